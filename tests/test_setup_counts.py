"""Evaluations made outside a population sampler's traced run (the automatic reference's fit, its coverage probe,
the prior/likelihood split check, the log Z check) are counted as they happen: a target that counts its own calls
sees exactly the run's reported totals."""

import jax
import jax.numpy as jnp
import numpy as np

import samplax
from samplax.reference_fit import tally


def _counting_target(calls):
    def bump(x):
        calls[0] += 1

    def logdensity(x):
        jax.debug.callback(bump, x)  # once per evaluation: per element under vmap, once per value-and-gradient
        return -0.5 * jnp.sum((x - 1.0) ** 2 / jnp.array([1.0, 4.0]))

    return samplax.Target.from_logdensity(logdensity, 2, name="counting")


def test_reference_fit_counts_every_evaluation_once_and_nothing_when_cached():
    calls = [0]
    t = _counting_target(calls)
    from samplax.reference_fit import auto_reference

    with jax.ensure_compile_time_eval(), tally() as cost:
        auto_reference(t)
    assert cost.n_grad > 0 and cost.n_hessian > 0 and cost.n_logdensity >= 512
    assert calls[0] == cost.n_grad + cost.n_logdensity + cost.n_hessian
    calls[0] = 0
    with jax.ensure_compile_time_eval(), tally() as again:
        auto_reference(t)  # cached per Target
    assert calls[0] == 0 and (again.n_grad, again.n_logdensity, again.n_hessian) == (0, 0, 0)


def _in_run(dt):
    """The evaluations the traced run reports: its gradients and its log-density values without a gradient."""
    stats = dt.stage_stats
    return int(np.sum(stats["n_grad"].values)) + int(np.sum(stats["n_logdensity"].values))


def test_smc_reports_the_evaluations_its_target_saw():
    calls = [0]
    t = _counting_target(calls)
    # sequential: vectorized populations run in lockstep, and one that finishes first idles through masked
    # evaluations XLA makes and discards (in no count, as with vmapped NUTS chains)
    kw = dict(num_particles=64, num_chains=2, seed=0, progress=False, chain_method="sequential")
    first = samplax.sample(t, "smc", reference="auto", **kw)
    a = first.attrs
    setup = a["n_setup_grad"] + a["n_setup_logdensity"] + a["n_setup_hessian"]
    assert a["n_setup_hessian"] > 0 and setup > 0
    assert calls[0] == _in_run(first) + setup + a["n_check_logdensity"]

    calls[0] = 0
    second = samplax.sample(t, "smc", reference="auto", **{**kw, "seed": 1})
    b = second.attrs
    assert (b["n_setup_grad"], b["n_setup_logdensity"], b["n_setup_hessian"]) == (0, 0, 0)  # the fit is cached
    assert calls[0] == _in_run(second) + b["n_check_logdensity"]


def test_learned_training_records_its_reference_fit():
    import warnings

    from samplax.diffusion.learned import train
    from samplax.reference_fit import auto_reference

    calls = [0]
    twin = _counting_target(calls)  # the same fit on a fresh Target: what the training's fit must have counted
    with jax.ensure_compile_time_eval(), tally() as expected:
        auto_reference(twin)
    assert calls[0] == expected.n_grad + expected.n_logdensity + expected.n_hessian > 0
    t = _counting_target([0])
    small = dict(num_steps=2, width=4, depth=1, num_freqs=1, num_iterations=1, batch_size=8, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the automatic reference's notes
        first = train(t, "pis", reference="auto", **small)
        again = train(t, "pis", reference="auto", **small)
    fit = {k: first.config[f"n_reference_fit_{k}"] for k in ("grad", "logdensity", "hessian")}
    assert fit == {"grad": expected.n_grad, "logdensity": expected.n_logdensity, "hessian": expected.n_hessian}
    assert [again.config[f"n_reference_fit_{k}"] for k in ("grad", "logdensity", "hessian")] == [0, 0, 0]
