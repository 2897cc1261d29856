"""init_positions as a dict of a numpyro model's constrained site values (numpyro's init_to_value): the flat
unconstrained positions it becomes map back to exactly those values, sample() starts there, and bad dicts are named."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import samplax
from samplax import Target
from samplax.init_values import positions_from_sites


def awkward():
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    w = numpyro.sample("w", dist.Dirichlet(np.ones(3)))  # simplex: 3 constrained values, 2 unconstrained
    numpyro.sample("b", dist.Uniform(0.0, s))  # a bound that depends on another site
    numpyro.sample("y", dist.Normal(w[0] * s, 1.0), obs=0.3)


@pytest.fixture(scope="module")
def target():
    return Target.from_numpyro(awkward)


VALUES = {"s": [0.5, 2.0], "w": [0.2, 0.3, 0.5], "b": [0.1, 1.5]}  # s, b per chain; w shared


def test_sites_map_to_positions_that_constrain_back(target):
    x = positions_from_sites(target, VALUES, num_chains=2)
    assert x.shape == (2, target.dim) == (2, 4)
    for c in range(2):
        back = target.constrain(x[c])
        np.testing.assert_allclose(back["s"], VALUES["s"][c], rtol=1e-6)
        np.testing.assert_allclose(back["w"], VALUES["w"], rtol=1e-6)
        np.testing.assert_allclose(back["b"], VALUES["b"][c], rtol=1e-6)  # inside (0, s) of its own chain


def test_sample_starts_from_the_dict_as_from_its_positions(target):
    kw = dict(num_chains=2, num_warmup=0, num_samples=5, step_size=0.05, progress=False)
    a = samplax.sample(target, "mala", init_positions=VALUES, **kw)
    b = samplax.sample(target, "mala", init_positions=positions_from_sites(target, VALUES, 2), **kw)
    for k in ("s", "w", "b"):
        np.testing.assert_array_equal(a.posterior[k].values, b.posterior[k].values)


@pytest.mark.parametrize("values,exc,match", [
    ({"s": 0.5}, ValueError, r"missing: \['b', 'w'\]"),
    ({**VALUES, "q": 1.0}, ValueError, r"unknown: \['q'\]"),
    ({**VALUES, "w": [0.5, 0.5]}, ValueError, r"init_positions\['w'\] must have the site's shape \(3,\)"),
    ({**VALUES, "b": [0.1, 2.5]}, ValueError, r"chain 1: b=2.5 outside the support of site\(s\) \['b'\]"),
    ({**VALUES, "s": -1.0}, ValueError, r"s=-1.0 outside the support of site\(s\) \[.b., .s.\]"),
    # finite unconstrained values of another point: stick-breaking ignores the last entry, so this started at
    # [0.2, 0.2, 0.6] without a word
    ({**VALUES, "w": [0.2, 0.2, 0.2]}, ValueError, r"w=\[0.2, 0.2, 0.2\] outside .*w: Dirichlet on Simplex"),
])
def test_bad_site_dicts_are_named(target, values, exc, match):
    with pytest.raises(exc, match=match):
        samplax.sample(target, "mala", init_positions=values, num_chains=2, num_warmup=0, num_samples=2,
                       step_size=0.1, progress=False)


def test_a_dict_for_a_plain_log_density_says_what_it_takes():
    with pytest.raises(TypeError, match=r"needs a numpyro target .* takes an array of shape \(2, 2\)"):
        samplax.sample(samplax.models.get("gaussian", dim=2), "mala", init_positions={"x": [0.0, 0.0]},
                       num_chains=2, num_warmup=0, num_samples=2, step_size=0.1, progress=False)


def test_matrix_values_outside_their_support_are_refused():
    """Cholesky-type transforms ignore the upper triangle: an LKJ factor with a non-zero upper entry and a
    non-symmetric Wishart matrix became other matrices and sampling started from those."""
    def model():
        numpyro.sample("L", dist.LKJCholesky(2, 1.0))
        numpyro.sample("S", dist.Wishart(4.0, scale_tril=np.eye(2)))

    t = Target.from_numpyro(model)
    good = {"L": [[1.0, 0.0], [0.6, 0.8]], "S": [[2.0, 0.5], [0.5, 3.0]]}
    x = positions_from_sites(t, good, num_chains=1)
    np.testing.assert_allclose(t.constrain(x[0])["L"], good["L"], atol=1e-6)
    np.testing.assert_allclose(t.constrain(x[0])["S"], good["S"], rtol=1e-6)
    for bad, name in (({**good, "L": [[1.0, 5.0], [0.3, 0.2]]}, "L"), ({**good, "S": [[2.0, 1.0], [0.0, 3.0]]}, "S")):
        with pytest.raises(ValueError, match=f"outside the support of site\\(s\\) \\['{name}'\\]"):
            positions_from_sites(t, bad, num_chains=1)
