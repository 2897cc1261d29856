"""Probability-flow ODE with diffrax, and each sample's log-density by the instantaneous change of variables.

dx/dt = v(x, t) = f(t) x - g(t)^2 s(x, t) / 2 is solved from t_max down to t_min together with
dl/dt = -div v(x, t), l(t_max) = log prior(x_T), so l(t_min) = log prior(x_T) + int_{t_min}^{t_max} div v dt
is the log-density at x(t_min) of the distribution the sampler really draws from (the prior pushed
through the ODE; Chen et al. 2018, Song et al. 2021 sec. D.2). div v = d f(t) - g^2 tr(ds/dx) / 2:
tr exactly (d Jacobian-vector products of the score) for d <= exact_trace_max_dim, else Hutchinson's
estimate mean_p z_p^T (ds/dx) z_p with num_probes Rademacher probes per particle, drawn once per solve.
"""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp

SOLVERS = {"euler": dfx.Euler, "heun": dfx.Heun, "midpoint": dfx.Midpoint, "ralston": dfx.Ralston,
           "bosh3": dfx.Bosh3, "tsit5": dfx.Tsit5, "dopri5": dfx.Dopri5, "dopri8": dfx.Dopri8}


def evals_per_step(solver) -> tuple[int, int]:
    """(vector-field evaluations per step, extra ones at the start): FSAL tableaus reuse the last stage."""
    if isinstance(solver, dfx.Euler):
        return 1, 0
    tab = solver.tableau
    stages = len(tab.c) + 1
    return (stages - 1, 1) if tab.fsal else (stages, 0)


def evals_per_field(dim: int, with_log_prob: bool, exact_trace_max_dim: int, num_probes: int) -> int:
    """Counted evaluations per vector-field evaluation (n_grad units: a score evaluation or a JVP of the score = 1):
    1, or with the log-density 1 + d JVPs (exact trace, d <= exact_trace_max_dim) or 1 + num_probes (Hutchinson)."""
    if not with_log_prob:
        return 1
    return 1 + (dim if dim <= exact_trace_max_dim else num_probes)


def _field(model, with_log_prob: bool, exact: bool):
    proc = model.process
    d = model.dim

    def one(x, t, probes):
        if not with_log_prob:
            return proc.pf_ode_drift(x, t, model.score(x, t)), jnp.zeros((), x.dtype)
        s, jvp = jax.linearize(lambda y: model.score(y, t), x)
        if exact:
            tr = jnp.trace(jax.vmap(jvp)(jnp.eye(d, dtype=x.dtype)))  # row k = J e_k; trace = sum_k (J e_k)_k
        else:
            tr = jnp.mean(jnp.sum(probes * jax.vmap(jvp)(probes), axis=-1))
        div = d * proc.f(t) - 0.5 * proc.g2(t) * tr
        return proc.pf_ode_drift(x, t, s), -div

    def field(t, y, probes):
        x, _ = y
        return jax.vmap(one, in_axes=(0, None, 0))(x, t, probes)

    return field


def solve(model, key, x, *, solver: str, ts=None, rtol=None, atol=None, max_steps: int = 4096,
          with_log_prob: bool = True, exact_trace_max_dim: int = 16, num_probes: int = 1):
    """Solve the PF ODE for the batch x (N, d) from t_max to t_min.

    Fixed steps on the descending grid `ts` (diffrax StepTo), or adaptive steps with a PID controller
    when rtol/atol are given (one step size for the whole batch: the error norm is over all particles).
    Returns (x, log_prob (N,), num_steps, num_accepted, num_rejected, finished) with diffrax's own step counts;
    `finished` is False when the solve stopped before t_min (max_steps used up): x and log_prob are then NaN (one
    solve for the batch, so every particle of it).
    """
    proc = model.process
    n, d = x.shape
    exact = d <= exact_trace_max_dim
    probes = (jax.random.rademacher(key, (n, num_probes, d)).astype(x.dtype) if with_log_prob and not exact
              else jnp.zeros((n, 0, d), x.dtype))
    y0 = (x, proc.prior_logpdf(x))
    T, t0 = float(proc.t_max), float(proc.t_min)
    if rtol is None:
        controller, dt0 = dfx.StepTo(ts=jnp.asarray(ts, x.dtype)), None
    else:
        controller, dt0 = dfx.PIDController(rtol=rtol, atol=atol), -0.01 * (T - t0)
    sol = dfx.diffeqsolve(dfx.ODETerm(_field(model, with_log_prob, exact)), SOLVERS[solver](), t0=T, t1=t0,
                          dt0=dt0, y0=y0, args=probes, stepsize_controller=controller,
                          saveat=dfx.SaveAt(t1=True), max_steps=max_steps, throw=False)
    # throw=False: a solve that runs out of max_steps returns (instead of raising an opaque runtime error from inside
    # the compiled program); its end state is not at t_min, so it is NaN and the run reports it
    finished = sol.result == dfx.RESULTS.successful
    xs, lp = sol.ys
    x_end = jnp.where(finished, xs[-1], jnp.nan)
    lp_end = jnp.where(finished, lp[-1], jnp.nan)
    st = sol.stats
    return (x_end, lp_end, st["num_steps"], st["num_accepted_steps"], st["num_rejected_steps"],
            jnp.broadcast_to(finished, (n,)))
