"""samplax.particles.temperatures: the fixed annealing schedules shared by the SMC benchmarks and CMCD / SCLD."""

import numpy as np
import pytest

from samplax.particles import temperatures


def test_schedules_values():
    np.testing.assert_allclose(temperatures.linear(4), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(temperatures.cubic(4), np.array([0, 0.25, 0.5, 0.75, 1]) ** 3)
    b = temperatures.two_ended(8, tail=1e-3)
    # first half (k / 4)^3 / 2, then 1 - beta = 0.5 (2e-3)^(j / 4), j = 0..4, and 1 at the end
    np.testing.assert_allclose(b[:4], 0.5 * (np.arange(4) / 4) ** 3)
    np.testing.assert_allclose(1 - b[4:8], 0.5 * (2e-3) ** (np.arange(4) / 4))
    assert b[-1] == 1.0 and len(b) == 9
    for sch in (temperatures.cubic(80), temperatures.two_ended(80), temperatures.two_ended(3, tail=0.1)):
        assert sch[0] == 0.0 and sch[-1] == 1.0 and np.all(np.diff(sch) > 0)


@pytest.mark.parametrize("call,match", [(lambda: temperatures.cubic(0), "stages must be an integer >= 1"),
                                        (lambda: temperatures.two_ended(1), "stages must be an integer >= 2"),
                                        (lambda: temperatures.linear(2.0), "stages must be an integer"),
                                        (lambda: temperatures.two_ended(8, tail=0.5), "tail must be in"),
                                        (lambda: temperatures.two_ended(8, tail=0.0), "tail must be in")])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
