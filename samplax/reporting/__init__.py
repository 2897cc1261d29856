"""The HTML diagnostics report: panels (one small function each) laid out in one offline page."""

from samplax.reporting.html import report
from samplax.reporting.panels import PANELS, Context, Section

__all__ = ["PANELS", "Context", "Section", "report"]
