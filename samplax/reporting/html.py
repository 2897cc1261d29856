"""`samplax.report(runs, target=None, out="report.html")`: one self-contained HTML page (images embedded)."""

from __future__ import annotations

import datetime
import html
import pathlib

from samplax.reporting.figures import Figures
from samplax.reporting.panels import PANELS, Context, render

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
h1{font-size:1.5em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4} td.bad{background:#fbd3d3;font-weight:bold} .warn li{color:#8a3b00} .ok{color:#19692c}
.small{font-size:.8em;color:#666} img{max-width:100%;display:block;margin:.5em 0} pre.bad{background:#fbd3d3;padding:.5em}
nav a{margin-right:1em} ul.verdict li.bad{color:#9b1c1c} ul.verdict li.ok{color:#19692c}
"""

# After load: count images that failed and errors raised, so a headless browser test can read them from the DOM.
CHECK_JS = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); });
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
  document.body.setAttribute('data-errors', String(window.__errors.length));
});
"""


def _as_runs(runs) -> dict:
    if isinstance(runs, dict):
        if not runs:
            raise ValueError("report: runs is empty; pass a DataTree or a dict label -> DataTree")
        return runs
    if hasattr(runs, "children") and "posterior" in runs.children:
        return {runs.attrs.get("sampler", "run"): runs}
    raise TypeError(f"report: runs must be a DataTree or a dict label -> DataTree, got {type(runs).__name__}")


def report(runs, target=None, out="report.html", *, hitting_set=None, hitting_label: str = "set",
           hitting_oracle: float | None = None, figures_dir=None, figure_formats=("png", "svg"),
           panels=None) -> pathlib.Path:
    """Write the diagnostics of one run or several side by side to one offline HTML file; return its path.

    target: a Target with ground truth (exact moments, exact sampler or reference draws) adds W2 and
      second-moment bias against gradient evaluations. hitting_set: the set's indicator, as
      `samplax.diagnostics.hit_times_from_draws` takes it, adds Kaplan-Meier survival curves; hitting_oracle a known mean
      hitting time overlaid as exp(-t / mean). figures_dir: also export every figure as PNG/SVG there.
    """
    import matplotlib

    matplotlib.use("Agg")
    runs = _as_runs(runs)
    out = pathlib.Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report: out must end in .html, got {str(out)!r}")
    ctx = Context(target=target, figures=Figures(figures_dir, figure_formats), hitting_set=hitting_set,
                  hitting_label=hitting_label, hitting_oracle=hitting_oracle)
    sections = [s for s in (render(p, runs, ctx) for p in (panels or PANELS)) if s is not None]
    title = "samplax report: " + ", ".join(runs) + (f" on {target.name}" if target is not None else "")
    nav = "".join(f'<a href="#s{i}">{html.escape(s.title)}</a>' for i, s in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{html.escape(s.title)}</h2>{s.body}' for i, s in enumerate(sections))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script>{CHECK_JS}</script></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='small'>written {stamp}</p><nav>{nav}</nav>{body}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # never leave a half-written report under the final name
    report.last_errors = list(ctx.errors)
    return out
