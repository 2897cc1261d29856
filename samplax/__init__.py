"""samplax: sampling on JAX with honest diagnostics."""

import numpyro as _numpyro

# arviz_base puts a lazy_loader stand-in for numpyro into sys.modules when it is imported first; a later
# `import numpyro.distributions` through that stand-in loses the package's submodule attributes
# (`numpyro.distributions.distribution`, which numpyro.factor needs), so every model with an improper prior
# failed to build. Touching an attribute loads numpyro fully, once, before anything else imports from it.
_numpyro.__version__

from samplax import jax_cache as _jax_cache

_jax_cache.configure_from_env()  # JAX's persistent compilation cache, on by default (see samplax/jax_cache.py)

from samplax import diagnostics, diffusion, fkc, models, particles, samplers
import samplax.diagnostics.reference  # noqa: E402,F401  (so samplax.diagnostics.reference.reference_z works)
from samplax.results import load, save
from samplax.api import sample
from samplax.compare import compare
from samplax.predictive_checks import posterior_predictive, predictive, prior_predictive
from samplax.reporting import report  # the HTML report; `html_report` is the same function
from samplax.reporting import report as html_report
from samplax.diagnostics.report import text_report
from samplax.target import Target
from samplax.jax_cache import compilation_cache

__all__ = ["Target", "compare", "compilation_cache", "diagnostics", "diffusion", "fkc", "html_report", "load", "models", "particles", "posterior_predictive", "predictive", "prior_predictive", "report", "sample", "samplers", "save", "text_report"]
__version__ = "0.1.0"


def __getattr__(name):
    """Submodules not imported above (samplax.optimizers, samplax.experiments, samplax.meanfield, ...) load on
    first use, so `import samplax; samplax.optimizers.minimize(...)` works as the docs write it."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
