"""The HTML diagnostics report: panels (one small function each) laid out in one offline page."""

from samplax.reporting.html import report
from samplax.reporting.panels import PANELS, Context, Section

__all__ = ["PANELS", "Context", "Section", "report"]


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
