"""Checkpoint / resume of CMCD / SCLD (`train_controlled`) and NETS (`train_nets`) training, as PIS / DDS's.

A run stopped right after a checkpoint (a save that raises, as a kill would) and resumed from that file must give
the uninterrupted run's loss history and parameters bitwise: iteration i uses the key fold_in(PRNGKey(seed), i) in
both, the optimiser state (Adam moments, step count) is restored exactly, and the jitted step is the same program
on the same inputs, so no float tolerance is needed (a tolerance would hide a lost or repeated step, which changes
the Adam count and the keys). Resuming with another target (same name and dim, other log-density), kind, family or
setting must be refused, naming it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diffusion.learned import resume as ckpt
from samplax.diffusion.learned import train
from samplax.diffusion.learned.cmcd import train_controlled
from samplax.diffusion.learned.nets import train_nets

M = np.array([[-1.5, 0.5], [1.5, -0.5]])


def mixture(shift=0.0):
    m = jnp.asarray(M)

    def lp(x):
        return jax.scipy.special.logsumexp(-0.5 * jnp.sum((x - m - shift) ** 2, -1)) - jnp.log(2 * jnp.pi)

    return samplax.Target.from_logdensity(lp, 2, name="mix2")


@pytest.fixture(scope="module")
def target():
    return mixture()


CONTROLLED = dict(num_steps=4, batch_size=8, sigma=2.0, width=8, depth=1, num_freqs=2, seed=3, progress=False)
NETS = dict(num_steps=4, batch_size=8, sigma=2.0, width=8, depth=1, num_freqs=2, seed=3, loss_times=3,
            progress=False)


class Killed(Exception):
    pass


def _stopped_after(monkeypatch, iteration):
    """Make the training loop die right after writing the checkpoint of `iteration` (as a kill there would)."""
    real = ckpt.save

    def save(path, fmt, config, fingerprint, state, history, it, extra=None):
        real(path, fmt, config, fingerprint, state, history, it, extra)
        if it == iteration:
            raise Killed

    monkeypatch.setattr(ckpt, "save", save)


def _same_leaves(a, b):
    la, lb = jax.tree.leaves(eqx.filter(a, eqx.is_array)), jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(la) == len(lb) > 0
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _interrupt_and_resume(monkeypatch, fn, path, n, stop, **kw):
    with monkeypatch.context() as mp:
        _stopped_after(mp, stop)
        with pytest.raises(Killed):
            fn(num_iterations=n, checkpoint=path, checkpoint_every=stop, **kw)
    return fn(num_iterations=n, resume=path, **kw)


@pytest.mark.parametrize("kind,loss", [("cmcd", "log_variance"), ("scld", "log_variance"), ("cmcd", "kl")])
def test_controlled_resume_equals_uninterrupted(target, tmp_path, monkeypatch, kind, loss):
    # the default cosine learning rate (a function of num_iterations): stopped at 3 of 6, resumed to 6
    fn = lambda **kw: train_controlled(target, kind, loss, **kw)  # noqa: E731
    full = fn(num_iterations=6, **CONTROLLED)
    resumed = _interrupt_and_resume(monkeypatch, fn, tmp_path / "c.ckpt", 6, 3, **CONTROLLED)
    assert len(full.history) == 6
    np.testing.assert_array_equal(resumed.history, full.history)
    _same_leaves(resumed.model, full.model)
    assert resumed.config["train_log_z_last"] == full.config["train_log_z_last"]  # the log Z history is restored
    assert resumed.config["n_grad_train"] == full.config["n_grad_train"]


def test_controlled_constant_rate_run_can_be_extended(target, tmp_path):
    kw = dict(CONTROLLED, lr_schedule="constant")
    full = train_controlled(target, "cmcd", num_iterations=5, **kw)
    ck = tmp_path / "c.ckpt"
    train_controlled(target, "cmcd", num_iterations=2, checkpoint=ck, checkpoint_every=2, **kw)
    longer = train_controlled(target, "cmcd", num_iterations=5, resume=ck, **kw)
    np.testing.assert_array_equal(longer.history, full.history)
    _same_leaves(longer.model, full.model)


def test_nets_resume_equals_uninterrupted(target, tmp_path, monkeypatch):
    fn = lambda **kw: train_nets(target, **kw)  # noqa: E731
    full = fn(num_iterations=6, **NETS)
    resumed = _interrupt_and_resume(monkeypatch, fn, tmp_path / "n.ckpt", 6, 4, **NETS)
    for k in full.history:
        np.testing.assert_array_equal(resumed.history[k], full.history[k])
    _same_leaves(resumed.model, full.model)


def test_refusals_name_what_differs(target, tmp_path):
    ck = tmp_path / "c.ckpt"
    train_controlled(target, "cmcd", num_iterations=2, checkpoint=ck, checkpoint_every=1, **CONTROLLED)
    # the same name "mix2" and dim 2, another log-density: the content fingerprint differs
    with pytest.raises(ValueError, match="logdensity"):
        train_controlled(mixture(shift=0.5), "cmcd", num_iterations=2, resume=ck, **CONTROLLED)
    with pytest.raises(ValueError, match=r"different settings \['kind', 'num_subtrajectories', 'mcmc_steps'\]"):
        train_controlled(target, "scld", num_iterations=2, resume=ck, **CONTROLLED)
    with pytest.raises(ValueError, match=r"settings \['loss', 'kl_gradient'\]: loss='log_variance' \(now 'kl'\)"):
        train_controlled(target, "cmcd", "kl", num_iterations=2, resume=ck, **CONTROLLED)
    with pytest.raises(ValueError, match=r"different settings \['batch_size'\]: batch_size=8 \(now 16\)"):
        train_controlled(target, "cmcd", num_iterations=2, resume=ck, **{**CONTROLLED, "batch_size": 16})
    # the cosine learning rate is a function of the length: a longer run is refused by name
    with pytest.raises(ValueError, match=r"different settings \['num_iterations'\].*same length"):
        train_controlled(target, "cmcd", num_iterations=4, resume=ck, **CONTROLLED)
    # another family's checkpoint
    with pytest.raises(ValueError, match="written by cmcd training.*this is nets training"):
        train_nets(target, num_iterations=2, resume=ck, **NETS)
    pis = tmp_path / "p.ckpt"
    train(target, "pis", "log_variance", num_steps=2, batch_size=4, width=4, depth=1, num_freqs=1, num_iterations=1,
          checkpoint=pis, progress=False)
    with pytest.raises(ValueError, match="written by pis training.*this is cmcd training"):
        train_controlled(target, "cmcd", num_iterations=2, resume=pis, **CONTROLLED)
    # a saved sampler is not a checkpoint
    saved = train_controlled(target, "cmcd", num_iterations=1, **CONTROLLED).save(tmp_path / "s.eqx")
    with pytest.raises(ValueError, match="saved sampler, not a training checkpoint"):
        train_controlled(target, "cmcd", num_iterations=2, resume=saved, **CONTROLLED)
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1"):
        train_controlled(target, "cmcd", num_iterations=2, checkpoint=ck, checkpoint_every=0, **CONTROLLED)
    with pytest.raises(ValueError, match="is a directory"):
        train_controlled(target, "cmcd", num_iterations=2, checkpoint=tmp_path, **CONTROLLED)
    with pytest.raises(FileNotFoundError, match="resume="):
        train_controlled(target, "cmcd", num_iterations=2, resume=tmp_path / "missing.ckpt", **CONTROLLED)

    nk = tmp_path / "n.ckpt"
    train_nets(target, num_iterations=2, checkpoint=nk, checkpoint_every=1, **NETS)
    with pytest.raises(ValueError, match="logdensity"):
        train_nets(mixture(shift=0.5), num_iterations=2, resume=nk, **NETS)
    with pytest.raises(ValueError, match=r"different settings \['epsilon'\]"):
        train_nets(target, num_iterations=2, resume=nk, epsilon=0.5, **NETS)
    with pytest.raises(ValueError, match=r"different settings \['num_iterations'\]"):  # NETS's rate is always cosine
        train_nets(target, num_iterations=3, resume=nk, **NETS)
    again = train_nets(mixture(), num_iterations=2, resume=nk, **NETS)  # the same content: resumes (nothing left)
    assert len(again.history["loss"]) == 2
