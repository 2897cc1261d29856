"""The sECD paper's quoted escape-time formulas (issue 20 part 5) against samplax's exact 1D oracles, barrier growing.

Exact ground truth: `mfpt_langevin` (the mean first-passage double integral) and `telegraph_mean_hitting_time`; no
Monte Carlo. See benchmarks/ecd_asymptotics.py for the tables."""

import numpy as np
import pytest

from samplax.diagnostics.hitting_theory import (cusp_double_well, cusp_mfpt_asymptotic, ecd_escape_quoted,
                                                kramers_time, mfpt_langevin, sgd_escape_quoted)

SQRT_PI = np.sqrt(np.pi)
EXPONENTS = [8, 16, 32, 64, 128]


@pytest.mark.parametrize("omega, s", [(1.0, 1.0), (2.0, 0.3)])
def test_exact_mfpt_tends_to_the_quoted_sgd_formula_times_sqrt_pi(omega, s):
    """Cusp well omega^2 (|x| - a)^2 / 2, SGD at T = s/2: exact / quoted -> sqrt(pi) (to the top) and 2 sqrt(pi) (to
    the other minimum), the gap shrinking like 1 / (2 exponent) (Laplace's next order, T / (k a^2))."""
    T, gaps = s / 2, []
    for ex in EXPONENTS:
        a = np.sqrt(ex * s) / omega
        U = cusp_double_well(a, omega**2)
        q = sgd_escape_quoted(a, omega, s)
        top, other = mfpt_langevin(U, -a, 0.0, T) / q, mfpt_langevin(U, -a, a, T) / q
        gaps.append(other / (2 * SQRT_PI) - 1)
        assert abs(top / SQRT_PI - 1) < 1.5 / ex, (ex, top)
        assert abs(other / (2 * SQRT_PI) - 1) < 1.5 / ex, (ex, other)
        # our Laplace constant: ratio -> 1
        assert abs(mfpt_langevin(U, -a, a, T) / cusp_mfpt_asymptotic(a, omega**2, T) - 1) < 1.5 / ex
    assert np.all(np.diff(gaps) < 0) and gaps[-1] > 0  # approaches from above, monotonically
    scaled = np.array(gaps) * 2 * np.array(EXPONENTS)  # gap ~ 1 / (2 exponent): scaled -> 1
    assert np.all(np.diff(np.abs(scaled - 1)) < 0) and abs(scaled[-1] - 1) < 0.05, scaled
    # power: the formula without the constant (ratio 1) is rejected at every barrier
    assert all(g > 0.5 for g in (np.array(gaps) + 1) * 2 * SQRT_PI - 1)


def test_quoted_sgd_formula_is_not_the_smooth_well_law():
    """On a smooth quartic well of the same barrier and curvature the exact time follows Kramers (prefactor free of
    s), and its ratio to the quoted formula keeps drifting with the barrier instead of settling."""
    ratios = []
    for ex in [16, 32, 64]:
        a, T = np.sqrt(ex), 0.5  # omega = s = 1
        quartic = lambda x, a=a: (x**2 - a**2) ** 2 / (8 * a**2) * 4  # noqa: E731  barrier a^2/2, curvature 4 at +-a
        exact = mfpt_langevin(quartic, -a, a, T)
        assert abs(exact / kramers_time(quartic, -a, 0.0, T) - 1) < 0.05  # Kramers (to well past the saddle) is its law
        ratios.append(exact / sgd_escape_quoted(a, 1.0, 1.0))
    assert ratios[-1] / ratios[0] > 1.6  # grows like sqrt(exponent) (Kramers has no 1/a): no constant limit


def test_quoted_ecd_formula_is_the_cusp_law_at_curvature_omega():
    """ecd(a, omega, h) = sgd(a, sqrt(omega), h) / h, so the exact MFPT on a cusp well of curvature omega at T = h/2,
    on a clock 1/h slower, over the quoted formula tends to 2 sqrt(pi) as well."""
    omega, h = 1.5, 0.4
    for ex in [16, 64, 128]:
        a = np.sqrt(ex * h / omega)
        q = ecd_escape_quoted(a, omega, h)
        assert np.isclose(q, sgd_escape_quoted(a, np.sqrt(omega), h) / h, rtol=1e-12)
        r = mfpt_langevin(cusp_double_well(a, omega), -a, a, h / 2) / h / q
        assert abs(r / (2 * SQRT_PI) - 1) < 1.5 / ex, (ex, r)


def test_samplax_secd_telegraph_oracle_has_no_fixed_exponential_rate():
    """samplax's sECD (benchmarks/ecd_escape.py matching) under the energy ceiling: the exact telegraph time grows
    far slower than the overdamped MFPT at the same temperature, unlike the quoted sECD law's fixed rate."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    import ecd_asymptotics

    rows, cfg = ecd_asymptotics.telegraph_rows([2.0, 4.0, 6.0])
    rates_t = [r["rate_telegraph"] for r in rows[1:]]
    rates_l = [r["rate_langevin"] for r in rows[1:]]
    assert all(0 < rt < 0.2 for rt in rates_t), rates_t
    assert all(abs(rl * cfg["T"] - 1) < 0.1 for rl in rates_l), rates_l  # Kramers: rate 1/T
