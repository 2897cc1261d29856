"""Forward noising processes dX = f(t) X dt + g(t) dW with Gaussian marginals X_t = alpha(t) X_0 + sigma(t) Z.

Every quantity a sampler needs follows from `log_alpha(t)` and `sigma(t)`:
  f(t) = d/dt log alpha(t),   g(t)^2 = d/dt sigma(t)^2 - 2 f(t) sigma(t)^2
(Kingma et al. 2021, "Variational Diffusion Models", eq. for the SDE of a Gaussian path; Song et al.
2021, "Score-Based Generative Modeling through SDEs", sec. 3.4). Times run over [t_min, t_max];
the reverse samplers start from the Gaussian `prior` at t_max.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from samplax import checks

Array = jax.Array
KINDS = ("vp", "vp_cosine", "ve")


@dataclasses.dataclass(frozen=True)
class Process:
    """A Gaussian forward process given by log alpha(t) and sigma(t) (scalar functions of scalar t)."""

    name: str
    log_alpha: Callable[[Array], Array]
    sigma: Callable[[Array], Array]
    t_min: float
    t_max: float
    params: tuple = ()

    def alpha(self, t):
        return jnp.exp(self.log_alpha(t))

    def f(self, t):
        """Linear drift coefficient: f(x, t) = f(t) x."""
        return jax.grad(self.log_alpha)(jnp.asarray(t, float))

    def g2(self, t):
        """Squared diffusion coefficient g(t)^2."""
        t = jnp.asarray(t, float)
        dvar = jax.grad(lambda s: self.sigma(s) ** 2)(t)
        return dvar - 2.0 * self.f(t) * self.sigma(t) ** 2

    def log_snr(self, t):
        """lambda(t) = log(alpha / sigma), the variable DEIS / DPM-Solver integrate in."""
        return self.log_alpha(t) - jnp.log(self.sigma(t))

    def prior_std(self) -> Array:
        """Std of the Gaussian the reverse process starts from at t_max (the marginal of X_0 = 0 there)."""
        return self.sigma(jnp.asarray(self.t_max, float))

    def prior_sample(self, key, n: int, dim: int) -> Array:
        return self.prior_std() * jax.random.normal(key, (n, dim))

    def prior_logpdf(self, x: Array) -> Array:
        s = self.prior_std()
        d = x.shape[-1]
        return -0.5 * jnp.sum((x / s) ** 2, -1) - d * (jnp.log(s) + 0.5 * math.log(2 * math.pi))

    def marginal_sample(self, key, x0: Array, t) -> Array:
        """X_t given X_0 = x0."""
        return self.alpha(t) * x0 + self.sigma(t) * jax.random.normal(key, x0.shape, x0.dtype)

    def reverse_drift(self, x, t, score):
        """Drift of the reverse-time SDE in forward time: f(t) x - g(t)^2 s(x, t) (Anderson 1982).

        Integrating from t_max down to t_min with dX = reverse_drift dt + g dW-bar (dt < 0) samples p_t.
        """
        return self.f(t) * x - self.g2(t) * score

    def pf_ode_drift(self, x, t, score):
        """Probability-flow ODE velocity f(t) x - g(t)^2 s(x, t) / 2 (Song et al. 2021, eq. 13)."""
        return self.f(t) * x - 0.5 * self.g2(t) * score

    def time_grid(self, num_steps: int, reverse: bool = True) -> Array:
        """num_steps + 1 uniform times from t_max down to t_min (or up when reverse=False)."""
        ts = jnp.linspace(self.t_min, self.t_max, num_steps + 1)
        return ts[::-1] if reverse else ts


def _time_range(kind: str, t_min, t_max) -> tuple[float, float]:
    """(t_min, t_max) as floats when finite with 0 <= t_min < t_max, else a ValueError naming the argument: an empty
    or reversed range would hand back the prior draws untouched as if they were the target's."""
    t_min, t_max = checks.finite("t_min", t_min), checks.finite("t_max", t_max)
    if t_min < 0:
        raise ValueError(f"{kind}: t_min must be >= 0 (times run forward from the data at t = 0), got {t_min!r}")
    if not t_min < t_max:
        raise ValueError(f"{kind} needs t_min < t_max (the reverse samplers integrate from t_max down to t_min), got "
                         f"t_min={t_min!r}, t_max={t_max!r}; give a t_max above t_min")
    return t_min, t_max


def _checked(proc: "Process") -> "Process":
    """`proc` when sigma is finite and > 0 at t_min and at t_max (where the reverse samplers start and stop), else a
    ValueError naming the end and what to change."""
    for end in ("t_min", "t_max"):
        t = getattr(proc, end)
        with jax.ensure_compile_time_eval():  # a concrete number even when a process is built inside a trace
            s = float(proc.sigma(jnp.asarray(t, float)))
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"{proc.name}: sigma({end}={t!r}) = {s!r}, but the noise scale must be finite and > 0 at "
                             f"both ends of the time range; move {end} inside the schedule's range (e.g. t_min > 0 for "
                             "a variance-preserving process)")
    return proc


def vp(beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3, t_max: float = 1.0) -> Process:
    """Variance-preserving SDE with linear beta(t) (DDPM's continuous limit, Song et al. 2021)."""
    if not 0 < beta_min < beta_max:
        raise ValueError(f"vp needs 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
    t_min, t_max = _time_range("vp", t_min, t_max)

    def log_alpha(t):
        return -0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t ** 2)

    def sigma(t):
        return jnp.sqrt(-jnp.expm1(2.0 * log_alpha(t)))

    return _checked(Process("vp", log_alpha, sigma, t_min, t_max, (beta_min, beta_max)))


def vp_cosine(s: float = 0.008, t_min: float = 1e-3, t_max: float = 0.995) -> Process:
    """Variance-preserving with the cosine schedule alpha^2 = cos^2((t+s)/(1+s) pi/2) / cos^2(s/(1+s) pi/2)
    (Nichol & Dhariwal 2021); t_max < 1 keeps g^2 finite."""
    t_min, t_max = _time_range("vp_cosine", t_min, t_max)
    c0 = math.log(math.cos(s / (1 + s) * math.pi / 2))

    def log_alpha(t):
        return jnp.log(jnp.cos((t + s) / (1 + s) * jnp.pi / 2)) - c0

    def sigma(t):
        return jnp.sqrt(-jnp.expm1(2.0 * log_alpha(t)))

    return _checked(Process("vp_cosine", log_alpha, sigma, t_min, t_max, (s,)))


def ve(sigma_min: float = 0.01, sigma_max: float = 10.0, t_min: float = 0.0, t_max: float = 1.0) -> Process:
    """Variance-exploding SDE, sigma(t) = sigma_min (sigma_max / sigma_min)^t (Song et al. 2021)."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"ve needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    t_min, t_max = _time_range("ve", t_min, t_max)
    r = math.log(sigma_max / sigma_min)

    def log_alpha(t):
        return jnp.zeros_like(jnp.asarray(t, float))

    def sigma(t):
        return sigma_min * jnp.exp(r * t)

    return _checked(Process("ve", log_alpha, sigma, t_min, t_max, (sigma_min, sigma_max)))


def get(process) -> Process:
    """A Process, or one of the names 'vp', 'vp_cosine', 've' with default parameters."""
    if isinstance(process, Process):
        return process
    table = {"vp": vp, "vp_linear": vp, "vp_cosine": vp_cosine, "cosine": vp_cosine, "ve": ve}
    if not checks.member(process, table):
        raise ValueError(f"process must be a samplax.diffusion.Process or one of {KINDS}, got {process!r}")
    return table[process]()
