"""`train(target, kind, loss=...)`: every learned sampler from one entry point; PIS / DDS training (optax; progress bar,
checkpoints, resume) here, CMCD / SCLD in `cmcd`, NETS in `nets`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from samplax import checks
from samplax.checks import integer as _int, positive as _pos
from samplax.checkpoint import target_fingerprint
from samplax.diffusion.learned.losses import LOSSES, loss_fn
from samplax.diffusion.learned.network import TIME_EMBEDDINGS
from samplax.diffusion.learned.paths import KINDS, SCHEDULES, make_path
from samplax.diffusion.learned import resume as ckpt
from samplax.diffusion.learned.sampler import FORMAT, TrainedSampler, new_control
from samplax.diffusion.learned.checks import finite_loss, training_bar


LR_SCHEDULES = ("constant", "cosine")


def _optimizer(lr, clip_norm, clip_value=None, lr_schedule="constant", num_iterations=1):
    """Adam after gradient clipping: by global norm, and elementwise at clip_value as both reference codes do
    (`optax.clip(1.0)`); lr_schedule "cosine" decays the rate to 0 over the run (optax.cosine_decay_schedule)."""
    parts = [optax.clip_by_global_norm(clip_norm)]
    if clip_value is not None:
        parts.append(optax.clip(clip_value))
    rate = optax.cosine_decay_schedule(lr, num_iterations) if lr_schedule == "cosine" else lr
    return optax.chain(*parts, optax.adam(rate))


TRAINERS = ("pis", "dds", "cmcd", "scld", "nets")


def _trainer(kind: str):
    """The function whose named parameters are `kind`'s options (for cmcd / scld, train_controlled's own and
    make_config's, which its **settings go to)."""
    if kind in ("cmcd", "scld"):
        from samplax.diffusion.learned.cmcd import make_config, train_controlled

        return train_controlled, make_config
    if kind == "nets":
        from samplax.diffusion.learned.nets import train_nets

        return (train_nets,)
    return (train_diffusion,)


def _check_options(kind: str, options: dict) -> None:
    """A misspelled option is named with a did-you-mean and the trainer's options (not Python's bare TypeError)."""
    import difflib
    import inspect

    known = list(dict.fromkeys(
        p.name for f in _trainer(kind) for p in inspect.signature(f).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("target", "kind", "loss")))
    unknown = [k for k in options if k not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise TypeError(f"train(kind={kind!r}): unknown option {unknown[0]!r}{hint} (options: {', '.join(known)})")


def train(target, kind: str, loss: str | None = None, reference=None, **options):
    """Train a learned sampler for `target`; `samplax.sample(target, trained, num_particles=N, num_chains=C)` runs it.

    kind: "pis" / "dds" (controlled diffusions, `train_diffusion`: loss "kl" by default or "log_variance"),
      "cmcd" / "scld" (controlled SMC, `cmcd.train_controlled`: loss "log_variance" by default or "kl"),
      "nets" (non-equilibrium transport, `nets.train_nets`: loss "pinn" by default or "action").
    reference: None (the sampler's reference N(0, sigma^2) sits at the origin of the target's coordinates), "auto"
      (learn in coordinates whitened by the automatic Gaussian reference tempered SMC uses: a Laplace fit refined by
      importance sampling, covariance x 4), (mean, scale) or (mean, cov); see `affine`. Real posteriors need it:
      from the origin most posteriordb ports fail at the first iteration or end with degenerate weights.
    options: the keyword settings of that function (each refuses what it does not know).
    """
    if not checks.member(kind, TRAINERS):
        raise ValueError(f"kind must be one of {TRAINERS}, got {kind!r}")
    _check_options(kind, options)
    if reference is not None:
        import warnings

        from samplax.diffusion.learned import affine
        from samplax.particles.run import as_target
        from samplax.reference_fit import tally

        target = as_target(target)
        with tally() as setup_cost:  # the automatic fit's evaluations (none when this Target's fit is cached)
            entry, notes = affine.fit(target, reference)
        if notes:  # informational, as tempering's reference='auto' says which reference it built
            warnings.warn(f"reference={reference!r} for {target.name!r}: " + "; ".join(notes), UserWarning,
                          stacklevel=2)
        trained = train(affine.whiten(target, entry), kind, loss, **options)
        trained.config["affine"] = entry
        trained.config.update(setup_cost.attrs("n_reference_fit_"))
        return trained
    if kind in ("cmcd", "scld"):
        from samplax.diffusion.learned.cmcd import train_controlled

        return train_controlled(target, kind, **({} if loss is None else {"loss": loss}), **options)
    if kind == "nets":
        from samplax.diffusion.learned.nets import train_nets

        return train_nets(target, **({} if loss is None else {"loss": loss}), **options)
    return train_diffusion(target, kind, "kl" if loss is None else loss, **options)


def train_diffusion(target, kind: str, loss: str = "kl", *, num_steps: int = 64, num_iterations: int = 1000,
          batch_size: int = 256, learning_rate: float = 1e-3, seed: int = 0, sigma: float | None = None,
          beta_min: float = 0.1, beta_max: float = 10.0, width: int = 64, depth: int = 2, num_freqs: int = 8,
          clip: float = 100.0, grad_clip_norm: float = 10.0, grad_clip_value: float | None = None,
          lr_schedule: str = "constant", schedule: str = "linear", detach_score: bool = True,
          time_embedding: str = "fourier", stl: bool = False, progress: bool | None = None, checkpoint=None,
          checkpoint_every: int = 100, resume=None) -> TrainedSampler:
    """Train a PIS or DDS sampler for `target` (a samplax.Target with an unnormalised log-density).

    kind: "pis" (controlled Brownian motion from 0) or "dds" (controlled time-reversed OU from N(0, sigma^2)).
    loss: "kl" (reverse KL, differentiates through the SDE) or "log_variance" (variance of log RND, detached paths).
    sigma: reference scale (PIS: std of the uncontrolled x_1; DDS: the OU stationary std); choose it to cover the
      target (default 1).
    schedule: DDS's OU time grid, "linear" or "cosine" (the reference codes'; see `paths`).
    detach_score: the network's input grad log pi~(x) carries no gradient (as in both reference codes). Default True
      since 2026-12-05: differentiating the KL loss through it into the target's Hessian made DDS-KL diverge on GMM40.
    time_embedding: the network's time input, "fourier" (sin / cos(2^j pi t), j < num_freqs) or "pis" (PIS-Grad's
      learnable-phase code of `width` channels, as the DDS code's network; see `network.Control`).
    stl: the reverse-KL gradient's sticking-the-landing estimator (the noise term's control with its parameters
      stopped, the DDS code's base-config setting; see `paths.rollout`); loss "kl" only.
    grad_clip_value: also clip each gradient entry to [-v, v] (the reference codes use 1.0); lr_schedule: "constant" or
      "cosine" (decay to 0 over num_iterations).
    Iteration i uses the key fold_in(PRNGKey(seed), i), so `resume` from a checkpoint written
      every `checkpoint_every` iterations continues exactly as an uninterrupted run would.
    """
    from samplax.particles.run import as_target

    target = as_target(target)
    if not checks.member(kind, KINDS):
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not checks.member(loss, LOSSES):
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    num_steps, num_iterations = _int("num_steps", num_steps, 1), _int("num_iterations", num_iterations, 1)
    batch_size, seed = _int("batch_size", batch_size, 2), _int("seed", seed, 0)
    checkpoint_every = _int("checkpoint_every", checkpoint_every, 1)
    checkpoint = ckpt.checkpoint_path(checkpoint)
    learning_rate, clip, grad_clip_norm = _pos("learning_rate", learning_rate), _pos("clip", clip), \
        _pos("grad_clip_norm", grad_clip_norm)
    sigma = 1.0 if sigma is None else _pos("sigma", sigma)
    if not checks.member(schedule, SCHEDULES):
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not checks.member(lr_schedule, LR_SCHEDULES):
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if grad_clip_value is not None:
        grad_clip_value = _pos("grad_clip_value", grad_clip_value)
    if not checks.member(time_embedding, TIME_EMBEDDINGS):
        raise ValueError(f"time_embedding must be one of {TIME_EMBEDDINGS}, got {time_embedding!r}")
    if not isinstance(detach_score, bool):
        raise ValueError(f"detach_score must be True or False, got {detach_score!r}")
    if not isinstance(stl, bool):
        raise ValueError(f"stl must be True or False, got {stl!r}")
    if stl and loss != "kl":
        raise ValueError(f"stl applies to the 'kl' loss only, got loss={loss!r}: drop stl or use loss='kl'")
    beta_min, beta_max = _pos("beta_min", beta_min), _pos("beta_max", beta_max)
    if kind == "pis":  # DDS's OU time grid: PIS's Brownian reference has none (recorded as the defaults)
        for name, value, default in (("schedule", schedule, "linear"), ("beta_min", beta_min, 0.1),
                                     ("beta_max", beta_max, 10.0)):
            if value != default:
                raise ValueError(f"{name}={value!r} is a DDS option (the OU time grid); kind='pis' (Brownian motion "
                                 f"from 0) has none: drop {name} or use kind='dds'")
    dim = target.dim
    config = {"kind": kind, "loss": loss, "dim": dim, "num_steps": num_steps, "sigma": sigma,
              "beta_min": float(beta_min), "beta_max": float(beta_max), "width": _int("width", width, 1),
              "depth": _int("depth", depth, 1), "num_freqs": _int("num_freqs", num_freqs, 1), "clip": clip,
              "input_scale": sigma, "schedule": schedule, "detach_score": detach_score,
              "grad_clip_value": grad_clip_value, "lr_schedule": lr_schedule,
              "batch_size": batch_size, "learning_rate": learning_rate, "grad_clip_norm": grad_clip_norm,
              "seed": seed, "num_iterations": num_iterations, "target": getattr(target, "name", "target"),
              "dtype": str(jnp.result_type(float))}
    if time_embedding != "fourier":  # stored only when set, so checkpoints and files from before it stay valid
        config["time_embedding"] = time_embedding
    if stl:
        config["stl"] = True
    path = make_path(kind, num_steps, sigma, beta_min, beta_max, schedule)
    root = jax.random.PRNGKey(seed)
    control = new_control(config, jax.random.fold_in(root, 2**31 - 1))
    step, opt = _step_fn(target.logdensity, path, config)
    opt_state = opt.init(eqx.filter(control, eqx.is_inexact_array))
    history: list[float] = []
    start = 0
    fingerprint = target_fingerprint(target)  # name, dim, shapes and log-density values: the target's content
    if resume is not None:
        control, opt_state, history, start = _load_checkpoint(resume, config, fingerprint, control, opt_state)

    bar = training_bar(progress, num_iterations, f"train {kind}[{loss}]", initial=start)
    try:
        for it in range(start, num_iterations):
            control, opt_state, value, log_w = step(control, opt_state, jax.random.fold_in(root, it))
            value = finite_loss(value, it, f"{kind}[{loss}]", "lower learning_rate, lower clip, or choose sigma to "
                                f"cover the target (sigma={sigma})", log_w)
            history.append(value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{value:.4g}"}, refresh=False)
            if checkpoint is not None and ckpt.due(it, checkpoint_every, num_iterations):
                _save_checkpoint(checkpoint, config, fingerprint, control, opt_state, history, it + 1)
    finally:
        if bar is not None:
            bar.close()
    # every training path: K gradients along the rollout, and the KL loss's backward pass differentiates
    # log pi~(x_K) once more (log-variance only evaluates it); with the score input not detached the KL backward pass
    # also makes one Hessian-vector product per step
    kl = loss == "kl"
    config["n_grad_train"] = num_iterations * batch_size * (num_steps + int(kl))
    config["n_hvp_train"] = num_iterations * batch_size * num_steps * int(kl and not detach_score)
    return TrainedSampler(control, config, np.asarray(history))


_STEP_CACHE: dict = {}  # a few compiled training steps, so a resumed or repeated run does not recompile


def _step_fn(logdensity, path, config):
    """(jitted step (control, opt_state, key) -> (control, opt_state, loss), optimiser), cached per settings."""
    c = config
    cache_key = (logdensity, c["kind"], c["loss"], c["num_steps"], c["sigma"], c["beta_min"], c["beta_max"],
                 c["batch_size"], c["learning_rate"], c["grad_clip_norm"], c["dim"], c["dtype"], c["schedule"],
                 c["detach_score"], c["grad_clip_value"], c["lr_schedule"],
                 c["num_iterations"] if c["lr_schedule"] == "cosine" else None, c.get("stl", False))
    if cache_key in _STEP_CACHE:
        return _STEP_CACHE[cache_key]
    opt = _optimizer(c["learning_rate"], c["grad_clip_norm"], c["grad_clip_value"], c["lr_schedule"],
                     c["num_iterations"])
    batch_size, dim, loss, detach_score = c["batch_size"], c["dim"], c["loss"], c["detach_score"]
    stl = c.get("stl", False)

    @eqx.filter_jit
    def step(control, opt_state, key):
        (value, log_w), grads = eqx.filter_value_and_grad(
            lambda ctl: loss_fn(ctl, path, logdensity, key, batch_size, dim, loss, detach_score, stl),
            has_aux=True)(control)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(control, eqx.is_inexact_array))
        return eqx.apply_updates(control, updates), opt_state, value, log_w  # log_w: the non-finite loss's message

    if len(_STEP_CACHE) >= 8:
        _STEP_CACHE.pop(next(iter(_STEP_CACHE)))
    _STEP_CACHE[cache_key] = (step, opt)
    return step, opt


# --------------------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path, config, fingerprint, control, opt_state, history, iteration):
    ckpt.save(path, FORMAT, config, fingerprint, (control, opt_state), history, iteration)


def _load_checkpoint(path, config, fingerprint, control, opt_state):
    (control, opt_state), history, iteration, _ = ckpt.load(
        path, FORMAT, config, fingerprint, (control, opt_state),
        length_dependent=config["lr_schedule"] == "cosine")  # the cosine learning rate is a function of the length
    return control, opt_state, list(history), iteration
