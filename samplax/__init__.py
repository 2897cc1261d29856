"""samplax: sampling on JAX with honest diagnostics."""

from samplax import diagnostics, diffusion, fkc, models, particles, samplers
from samplax.results import load, save
from samplax.api import sample
from samplax.compare import compare
from samplax.reporting import report
from samplax.target import Target

__all__ = ["Target", "compare", "diagnostics", "diffusion", "fkc", "load", "models", "particles", "report", "sample", "samplers", "save"]
__version__ = "0.1.0"
