"""Figures for the HTML report: matplotlib figure -> embedded PNG, and optional PNG/SVG export."""

from __future__ import annotations

import base64
import html
import io
import pathlib
import re


class Figures:
    """Turns figures into `<img>` tags (data URIs, so the page opens offline) and exports them when asked."""

    def __init__(self, export_dir: str | pathlib.Path | None = None, formats=("png", "svg"), dpi: int = 80):
        self.export_dir = None if export_dir is None else pathlib.Path(export_dir)
        self.formats, self.dpi = tuple(formats), dpi
        self.exported: list[pathlib.Path] = []
        bad = set(self.formats) - {"png", "svg", "pdf"}
        if bad:
            raise ValueError(f"figure formats must be png, svg or pdf, got {sorted(bad)}")

    def img(self, fig, name: str, alt: str) -> str:
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi, bbox_inches="tight")
        if self.export_dir is not None:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            for fmt in self.formats:
                path = self.export_dir / f"{stem}.{fmt}"
                fig.savefig(path, format=fmt, dpi=self.dpi, bbox_inches="tight")
                self.exported.append(path)
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    def from_plot_collection(self, pc, name: str, alt: str) -> str:
        """arviz-plots returns a PlotCollection; its matplotlib figure is `pc.viz["figure"]`."""
        fig = pc.viz["figure"]
        fig = fig.item() if hasattr(fig, "item") else fig
        return self.img(fig, name, alt)
