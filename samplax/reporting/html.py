"""`samplax.report(runs, target=None, out="report.html")`: one self-contained HTML page (images embedded)."""

from __future__ import annotations

import datetime
import html
import pathlib

from samplax.reporting.figures import Figures
from samplax.reporting.panels import PANELS, Context, render

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;margin:0 auto;padding:1em 1.2em 3em;
  max-width:1200px;color:#1f2328;background:#fff;overflow-wrap:anywhere}
h1{font-size:1.5em;margin:.3em 0} h2{font-size:1.25em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em;margin:1.2em 0 .3em}
nav{display:flex;flex-wrap:wrap;gap:.3em 1em;padding:.5em 0;border-bottom:1px solid #d0d7de}
nav a{color:#0969da;text-decoration:none} nav a:hover{text-decoration:underline}
.scroll{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid #d8dee4;padding:3px 7px;text-align:right;overflow-wrap:normal}
th{background:#f6f8fa} td.t{text-align:left;min-width:8em} td.bad{background:#ffd7d5;color:#82071e;font-weight:bold}
.warn li{color:#8a3b00} .ok{color:#1a7f37} .small{font-size:.8em;color:#59636e}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
pre{white-space:pre-wrap;overflow-wrap:anywhere} pre.bad{background:#ffd7d5;padding:.5em}
ul.verdict{list-style:none;padding-left:0;font-size:1.05em} ul.verdict li{padding:.15em 0}
ul.verdict li.bad{color:#9b1c1c} ul.verdict li.ok{color:#1a7f37}
ul.verdict li.ok::before{content:"\\2713  "} ul.verdict li.bad::before{content:"\\2717  "}
ol.ranking{list-style:none;padding-left:1em}
@media (max-width:600px){body{padding:.6em .7em 2em;font-size:15px} table{font-size:.8em}}
"""

# After load: count images that failed and errors raised, so a headless browser test can read them from the DOM.
CHECK_JS = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); }, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push(String(e.reason)); });
(function () {  // console errors count too
  var err = console.error;
  console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); return err.apply(console, arguments); };
})();
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
  document.body.setAttribute('data-errors', String(window.__errors.length));
  // window width : page width : visible width; the page overflows sideways when page width > visible width
  var de = document.documentElement;
  document.body.setAttribute('data-width', window.innerWidth + ':' + de.scrollWidth + ':' + de.clientWidth);
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
           panels=None, failed: dict | None = None) -> pathlib.Path:
    """Write the diagnostics of one run or several side by side to one offline HTML file; return its path.

    target: a Target with ground truth (exact moments, exact sampler or reference draws) adds W2 and
      second-moment bias against gradient evaluations. hitting_set: the set's indicator, as
      `samplax.diagnostics.hit_times_from_draws` takes it, adds Kaplan-Meier survival curves; hitting_oracle a known mean
      hitting time overlaid as exp(-t / mean). figures_dir: also export every figure as PNG/SVG there.
      failed: label -> error message of runs that raised (`samplax sample` with several samplers), listed in the
      verdict, so the report does not read as complete without them.
    """
    import matplotlib

    matplotlib.use("Agg")
    runs = _as_runs(runs)
    out = pathlib.Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report: out must end in .html, got {str(out)!r}")
    ctx = Context(target=target, figures=Figures(figures_dir, figure_formats), hitting_set=hitting_set,
                  hitting_label=hitting_label, hitting_oracle=hitting_oracle, failed=dict(failed or {}))
    sections = [s for s in (render(p, runs, ctx) for p in (panels or PANELS)) if s is not None]
    title = "samplax report: " + ", ".join(runs) + (f" on {target.name}" if target is not None else "")
    nav = "".join(f'<a href="#s{i}">{html.escape(s.title)}</a>' for i, s in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{html.escape(s.title)}</h2>{s.body}' for i, s in enumerate(sections))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script>{CHECK_JS}</script></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='small'>written {stamp}</p><nav>{nav}</nav>{body}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # never leave a half-written report under the final name
    report.last_errors = list(ctx.errors)
    return out
