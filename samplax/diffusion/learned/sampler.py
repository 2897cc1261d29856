"""A trained PIS / DDS sampler: run it as a population sampler, save and reload it."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from samplax.diffusion.learned import affine
from samplax.diffusion.learned.network import Control
from samplax.diffusion.learned.paths import make_path, rollout
from samplax.particles import base
from samplax.particles.resampling import resample, scheme
from samplax.particles.state import ParticleState, ess

FORMAT = "samplax-learned-diffusion/1"


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedSampler:
    """A PIS / DDS control with the settings it was trained with and the loss history.

    `samplax.sample(target, trained, num_particles=N, num_chains=C)` draws N paths per population, weights them
    by the exact discrete-time log RND (see `paths`), reports log Z = log mean exp(log w) (unbiased for Z) and
    resamples to N equally weighted particles.
    """

    control: Control
    config: dict[str, Any]  # kind, loss, dim, num_steps, sigma, beta_min, beta_max, width, depth, num_freqs, clip, ...
    history: np.ndarray  # loss per iteration

    @property
    def kind(self) -> str:
        return self.config["kind"]

    def path(self, num_steps: int | None = None):
        c = self.config
        # files written before `schedule` existed used the linear grid
        return make_path(c["kind"], num_steps or c["num_steps"], c["sigma"], c["beta_min"], c["beta_max"],
                         c.get("schedule", "linear"))

    def as_population_sampler(self, num_steps: int | None = None, resampling: str = "systematic",
                              **unknown) -> base.PopulationSampler:
        """num_steps: the trained grid by default; another K keeps the weights exact but the control was not fit to it."""
        refuse_unknown(f"sampling a trained {self.kind} sampler", unknown, TrainedSampler.as_population_sampler)
        if num_steps is not None and (not isinstance(num_steps, (int, np.integer)) or num_steps < 1):
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        scheme(resampling)  # validates the name
        path = self.path(num_steps)
        control, dim = self.control, self.config["dim"]

        def run(model, key, num_particles, progress):
            from samplax.particles.run import as_target

            target = as_target(model)
            if target.dim != dim:
                raise ValueError(f"this {self.kind} sampler was trained for dim {dim}, the target has dim {target.dim}")
            k_run, k_res = jax.random.split(key)
            x, log_w, ess_path = rollout(control, path, target.logdensity, k_run, num_particles, dim, progress=progress)
            log_z = logsumexp(log_w) - jnp.log(num_particles)
            state, _ = resample(k_res, ParticleState(x, log_w, log_z), resampling)
            K = path.num_steps
            stats = {"time": jnp.asarray((np.arange(K) + 1) / K), "ess": ess_path,
                     "n_grad": base.stage_counts(np.full(K, num_particles)), **base.final_weight_stats(log_w, K)}
            # n_grad: K gradient evaluations per path
            return base.Population(state.particles, log_z, stats, jnp.sum(stats["n_grad"]))

        settings = {**self.config, "num_steps": path.num_steps, "resampling": resampling}
        return affine.wrap(base.PopulationSampler(f"{self.kind}[{self.config['loss']}]", run, settings, "time"),
                           self.config)

    # ------------------------------------------------------------------ save / load
    def save(self, path) -> pathlib.Path:
        """One file: a JSON header line (config, history) then equinox's serialised network leaves."""
        return write_model(path, FORMAT, self.config, np.asarray(self.history).tolist(), self.control)


def refuse_unknown(what: str, unknown: dict, fn) -> None:
    """A TypeError naming the first option `fn` (an as_population_sampler) does not take and listing the ones it takes
    (`sample(target, trained, **settings)` passes its settings there), instead of Python's bare one."""
    if not unknown:
        return
    import difflib
    import inspect

    known = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
    name = next(iter(unknown))
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise TypeError(f"{what}: unknown option {name!r}{hint} (options: {', '.join(known)})")


def new_control(config: dict, key) -> Control:
    # files written before input_scale existed fed x unscaled: missing means 1.0, so they load as they were trained
    c = Control(config["dim"], key, config["width"], config["depth"], config["num_freqs"], config["clip"],
                config.get("input_scale", 1.0), config.get("time_embedding", "fourier"))
    dtype = jnp.dtype(config["dtype"])
    return jax.tree.map(lambda v: v.astype(dtype) if eqx.is_inexact_array(v) else v, c)


def write_model(path, fmt: str, config: dict, history, model) -> pathlib.Path:
    """One file: a JSON header line (format, config, history) then equinox's serialised leaves of `model`, written
    to a temporary name first so a failed save leaves no file that looks complete (every learned sampler's save)."""
    path = pathlib.Path(path)
    header = {"format": fmt, "config": config, "history": history}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, model)
    tmp.replace(path)
    return path


def read_header(f, path, fmt: str = FORMAT, what: str = "learned-diffusion") -> dict:
    line = f.readline()
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a samplax {what} file (no JSON header)") from err
    if not isinstance(header, dict) or header.get("format") != fmt:
        got = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"{path}: format {got!r}, expected {fmt!r}")
    if header.get("checkpoint"):  # resume.save's files share the format; their leaves are (model, optimiser state)
        config = header.get("config") if isinstance(header.get("config"), dict) else {}
        raise ValueError(f"{path} is a training checkpoint at iteration {header.get('iteration')} of "
                         f"{config.get('num_iterations')}; resume training with resume={str(path)!r}, or train to "
                         f"the end and save the sampler (trained.save(path))")
    return header


def read_model(path, fmt: str, what: str, template):
    """(header, model) of a file written by `write_model`; `template(config)` builds a model of the saved shape."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path {path} does not exist")
    with open(path, "rb") as f:
        header = read_header(f, path, fmt, what)
        model = eqx.tree_deserialise_leaves(f, template(header["config"]))
    return header, model


def load_trained(path) -> TrainedSampler:
    """Reload a sampler written by `TrainedSampler.save`."""
    header, control = read_model(path, FORMAT, "learned-diffusion",
                                 lambda config: new_control(config, jax.random.PRNGKey(0)))
    return TrainedSampler(control, header["config"], np.asarray(header["history"]))
