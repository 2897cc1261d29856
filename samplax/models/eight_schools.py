"""Eight schools (Rubin 1981) as numpyro models, centred and non-centred, with posteriordb reference draws."""

from __future__ import annotations

import numpy as np

from samplax.models import register
from samplax.models.posteriordb import load_data, load_reference
from samplax.target import Target

POSTERIOR = "eight_schools-eight_schools_noncentered"


def eight_schools_centered_model(J, sigma, y=None):
    """theta_j ~ N(mu, tau), y_j ~ N(theta_j, sigma_j); mu ~ N(0, 5), tau ~ HalfCauchy(5) (posteriordb priors)."""
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", J):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered_model(J, sigma, y=None):
    """posteriordb's eight_schools_noncentered: theta_tilde ~ N(0, 1), theta = mu + tau * theta_tilde."""
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", J):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def _data():
    d = load_data("eight_schools")
    return int(d["J"]), np.asarray(d["sigma"], dtype=float), np.asarray(d["y"], dtype=float)


def _reference(include_tilde: bool):
    ref = load_reference(POSTERIOR)
    if include_tilde:
        # Stan's theta_trans is not stored; it is a function of the stored draws.
        ref["theta_tilde"] = (ref["theta"] - ref["mu"][:, None]) / ref["tau"][:, None]
    return ref


@register("eight_schools_centered", "eight schools, centred (funnel-shaped; divergences expected); posteriordb reference draws")
def eight_schools_centered() -> Target:
    """Centred eight schools; same posterior as the non-centred one, so it carries its posteriordb reference draws."""
    J, sigma, y = _data()
    t = Target.from_numpyro(eight_schools_centered_model, J, sigma, y=y, name="eight_schools_centered")
    return t.replace(reference_draws=_reference(include_tilde=False))


@register("eight_schools_noncentered", "eight schools, non-centred as posteriordb's Stan model; reference draws")
def eight_schools_noncentered() -> Target:
    """Non-centred eight schools; ground truth: posteriordb reference draws for mu, tau, theta (and theta_tilde)."""
    J, sigma, y = _data()
    t = Target.from_numpyro(eight_schools_noncentered_model, J, sigma, y=y, name="eight_schools_noncentered")
    return t.replace(reference_draws=_reference(include_tilde=True))


register("eight_schools", "alias of eight_schools_noncentered (the parametrisation NUTS samples without divergences)")(
    eight_schools_noncentered)
