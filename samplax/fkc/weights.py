r"""Feynman-Kac corrector weights for every composition, derived in one place.

Setting (Skreta et al. 2025, "Feynman-Kac Correctors in Diffusion", arXiv 2503.02819, sec. 3).
The forward process dX = f(t) X dt + g(t) dW has marginals p_{i,t} for each input model i, with
scores s_i = grad log p_{i,t}. Sampling runs backwards, in reverse time tau = t_max - t (d tau = -dt).
Read in tau, the forward Fokker-Planck equation of each marginal gives

  (1)  d/dtau log p_i = f d + f <x, s_i> - (g^2 / 2) (lap log p_i + |s_i|^2)      (d = dimension)

since d/dt p = -div(f x p) + (g^2/2) lap p and div(f x p) = p (f d + f <x, grad log p>).

Every composition here is q_t = exp(Phi_t) with

  Phi_t(x) = sum_i beta_i log p_{i,t}(x) + b(t) r(x),   B = sum_i beta_i,  s_q = sum_i beta_i s_i,

  anneal p^beta:               beta_1 = beta,                       b = 0
  product p1 p2:               beta = (1, 1),                       b = 0
  geometric p1^g p2^(1-g):     beta = (g, 1 - g),                   b = 0
  reward tilt p exp(lam r):    beta_1 = 1, b(t) = lam (t_max - t) / (t_max - t_min) (0 at the prior, lam at t_min)

Feynman-Kac. Particles follow dX = v dtau + g dW and carry log-weights d log w = G(X, tau) dtau.
The weighted particle measure mu then solves d/dtau mu = -div(mu v) + (g^2/2) lap mu + G mu, so it
equals the unnormalised q_tau for all tau (mass included) iff mu = q solves it, i.e.

  (2)  G = d/dtau Phi + div v + <v, grad Phi> - (g^2/2) (lap Phi + |grad Phi|^2).

Corrected drift. We take the reverse SDE of the composed target, v = -f x + g^2 grad Phi (in
forward time: the process's `reverse_drift(x, t, grad Phi)`), so div v = -f d + g^2 lap Phi and
<v, grad Phi> = -f <x, grad Phi> + g^2 |grad Phi|^2. Then (2) becomes

  (3)  G = d/dtau Phi - f d - f <x, grad Phi> + (g^2/2) (lap Phi + |grad Phi|^2).

Inserting (1) for each lap log p_i: the Laplacians of log p_i cancel (they enter with -beta_i g^2/2
from (1) and +beta_i g^2/2 from (3)), and so do the f <x, s_i> terms, leaving the one formula
used by every composition:

  (4)  G = (B - 1) f d + (g^2/2) (|s_q + b grad r|^2 - sum_i beta_i |s_i|^2)
           + b'(tau) r - f b <x, grad r> + (g^2/2) b lap r,        b'(tau) = db/dtau = -db/dt.

Special cases (checked against the paper's propositions and the authors' code):
  anneal:    G = (beta - 1) f d + (g^2/2) beta (beta - 1) |s|^2
  product:   G = f d + g^2 <s_1, s_2>
  geometric: G = -(g^2/2) gamma (1 - gamma) |s_1 - s_2|^2 = (g^2/2) gamma (gamma - 1) |s_1 - s_2|^2
             (the authors' EDM code accumulates -gamma (gamma - 1) |s_u - s_c|^2 t dt with dt < 0 and
             g^2 = 2t for the EDM/VE process: the same sign)
  tilt:      G = (g^2/2)(2 b <s, grad r> + b^2 |grad r|^2 + b lap r) + b' r - f b <x, grad r>
Here f d is div(f(t) x), the paper's <grad, f>. For VP, f < 0, so annealing with beta > 1 and
products pull weight from particles where the scores are small (between the modes).

Normaliser. Start the particles at t_max from the normalised pi_0 proportional to q_{t_max} and
weight 1. Then E[prod of weights] = Z_{t_min} / Z_{t_max} (the unbiased SMC estimate, reweight()
in samplax.particles), so log Z = log Z_{t_max} + log(FK estimate). The input models are assumed
to have reached the process prior at t_max, p_{i,t_max} = N(0, sigma^2 I), sigma = sigma(t_max), so

  q_{t_max} = prod_i N(x; 0, sigma^2 I)^{beta_i} = Z_{t_max} N(x; 0, sigma^2 / B I),
  log Z_{t_max} = (d (1 - B) / 2) log(2 pi sigma^2) - (d / 2) log B                     (5)

(product: -(d/2) log(4 pi sigma^2) = log of the integral of a Gaussian squared; b(t_max) = 0 for
the tilt). The prior the sampler starts from is therefore N(0, sigma^2 / B) - not the process prior
when B != 1. With exact models, `init="exact"` instead starts with the log-weight
log q_{t_max}(x) - log N(x; 0, sigma^2 / B) (q_{t_max} from the models' exact log_prob): the weighted
particles then represent q_{t_max} with its exact mass, the initial reweight() estimates log Z_{t_max}
itself, and (5) is not added. This removes the small error of assuming p_{i,t_max} = N(0, sigma^2 I).

Other SDEs (eq. 6). For v = -f x + c g^2 grad Phi with noise variance k g^2, (2) gives (4) plus
g^2 (c - k/2 - 1/2)(lap Phi + |grad Phi|^2): the choices k = 2c - 1 (c = 1: the paper's target-score
SDE) need no Laplacian. Their transport part -f x + (g^2/2) grad Phi is B times too strong where the
experts agree (at high noise every p_i ~ N(0, sigma^2) and q ~ N(0, sigma^2 / B) barely moves), so the
weights must undo a large contraction and their variance is large for B != 1. sde="matched" keeps
c = 1 and takes k = 2 - 1/B, i.e. c - k/2 = 1/(2B): the transport is the probability-flow velocity of
the averaged score grad Phi / B, exact when the experts agree, and the weights gain

  (6)  (g^2/2)(1/B - 1)(lap Phi + |grad Phi|^2),   lap Phi = sum_i beta_i div s_i + b lap r,

which needs the divergence of each score (d forward-mode passes; counted in n_grad).

Time discretisation: Euler-Maruyama for X, trapezoid rule for int G dtau along each path (G at
both ends of a step uses the scores already needed for the drift, so it costs nothing extra).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def composed_grad(scores: Array, exponents: Array, b=0.0, grad_r: Array | None = None) -> Array:
    """grad Phi = sum_i beta_i s_i + b grad r, for scores (m, d) of one point."""
    g = jnp.tensordot(exponents, scores, axes=1)
    if grad_r is not None:
        g = g + b * grad_r
    return g


def log_weight_rate(process, t, x: Array, scores: Array, exponents: Array, reward=None) -> Array:
    """G of eq. (4) at one point x (d,), time t, expert scores (m, d); reward = (b, db_dtau, r, grad_r, lap_r) or None."""
    f, g2 = process.f(t), process.g2(t)
    d = x.shape[-1]
    big_b = jnp.sum(exponents)
    b = 0.0
    grad_r = None
    if reward is not None:
        b, db_dtau, r, grad_r, lap_r = reward
    s_phi = composed_grad(scores, exponents, b, grad_r)
    own = jnp.sum(exponents * jnp.sum(scores ** 2, -1))
    rate = (big_b - 1.0) * f * d + 0.5 * g2 * (jnp.sum(s_phi ** 2) - own)
    if reward is not None:
        rate = rate + db_dtau * r - f * b * jnp.dot(x, grad_r) + 0.5 * g2 * b * lap_r
    return rate


def matched_correction(process, t, grad_phi: Array, lap_phi: Array, big_b) -> Array:
    """Extra rate of the "matched" SDE (eq. 6): (g^2/2)(1/B - 1)(lap Phi + |grad Phi|^2)."""
    return 0.5 * process.g2(t) * (1.0 / big_b - 1.0) * (lap_phi + jnp.sum(grad_phi ** 2, -1))


def fk_rate_autodiff(process, t, x: Array, log_q, noise: float = 1.0) -> Array:
    """Eq. (2) by automatic differentiation of log q(x, t) (unnormalised), corrected drift, noise variance noise * g^2.

    Slow (Hessians), for tests: it checks the simplification (2) -> (4) without using (1).
    """
    t = jnp.asarray(t, float)
    dphi_dtau = -jax.grad(log_q, argnums=1)(x, t)
    grad = jax.grad(log_q)(x, t)
    lap = jnp.trace(jax.hessian(log_q)(x, t))
    f, g2 = process.f(t), process.g2(t)
    v = -f * x + g2 * grad
    div_v = -f * x.shape[-1] + g2 * lap
    return dphi_dtau + div_v + jnp.dot(v, grad) - 0.5 * noise * g2 * (lap + jnp.sum(grad ** 2))


def prior_log_z(process, dim: int, total_exponent: float) -> Array:
    """log Z_{t_max} of eq. (5): the normaliser of prod_i N(0, sigma^2)^{beta_i}, B = sum beta_i."""
    s2 = process.prior_std() ** 2
    return 0.5 * dim * (1.0 - total_exponent) * jnp.log(2 * math.pi * s2) - 0.5 * dim * math.log(total_exponent)


def prior_std(process, total_exponent: float) -> Array:
    """Std of the composed prior N(0, sigma^2 / B) the particles start from."""
    return process.prior_std() / jnp.sqrt(total_exponent)
