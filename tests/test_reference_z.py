"""reference_z: per-entry agreement with reference draws, for every shape of site arviz-stats labels."""

import numpy as np
import pytest
from arviz_base import from_dict

from samplax.diagnostics import summary
from samplax.diagnostics.reference import reference_z


@pytest.mark.parametrize("kind", ["matrix", "named coordinates", "vector", "scalar"])
def test_reference_z_labels_every_entry_as_the_summary_does(kind):
    """A matrix site (labels `m[0, 1]`) and a site with named coordinates (`theta[Choate]`) used to raise KeyError:
    the rows were looked up as `m[0,1]` and `theta[0]`. The z of a run drawn from the reference's distribution is
    small, and the same run shifted by 0.2 sd is flagged in every entry."""
    rng = np.random.default_rng(3)
    shape = {"matrix": (2, 2), "named coordinates": (2,), "vector": (3,), "scalar": ()}[kind]
    extra = dict(dims={"theta": ["school"]}, coords={"school": ["Choate", "Deerfield"]}) \
        if kind == "named coordinates" else {}
    ref = {"theta": rng.standard_normal((4000, *shape))}
    for shift, ok in ((0.0, True), (0.2, False)):
        dt = from_dict({"posterior": {"theta": rng.standard_normal((4, 1000, *shape)) + shift}}, **extra)
        z = reference_z(dt, ref)
        assert list(z.index) == list(summary(dt).index)
        assert len(z) == max(int(np.prod(shape)), 1)
        if ok:
            assert np.all(np.abs(z["z_mean"].astype(float)) < 5), z
        else:
            assert np.all(np.abs(z["z_mean"].astype(float)) > 5), z
    if kind == "named coordinates":
        assert list(z.index) == ["theta[Choate]", "theta[Deerfield]"]
