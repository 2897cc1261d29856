"""Training checkpoints of every learned sampler (PIS / DDS in `train`, CMCD / SCLD in `cmcd`, NETS in `nets`).

One file per checkpoint: a JSON header line (format, "checkpoint": true, iteration, config, history, the target's
content fingerprint `samplax.checkpoint.target_fingerprint` and any extra numbers) then equinox's serialised leaves of
the training state (model and optimiser state), written to a temporary name and renamed, so an interrupted write
leaves the previous checkpoint intact.

`load` refuses, naming what differs: a file of another sampler family (its format and kind), a saved sampler instead
of a checkpoint, any setting of the config except `num_iterations` (also that one when the learning rate depends on
the run's length), and another target (`samplax.checkpoint.refuse_mismatch` on the fingerprint: name, dim, shapes
and the log-density's values at fixed points, so another log-density under the same name is refused).
"""

from __future__ import annotations

import json
import pathlib

import equinox as eqx

from samplax.checkpoint import check_path, refuse_mismatch

FREE = ("num_iterations",)  # may change between the interrupted and the resumed run (unless length-dependent)


def checkpoint_path(checkpoint):
    """The checkpoint path, refused before any training when it can never be a file (a directory, ...)."""
    return None if checkpoint is None else check_path(checkpoint, "checkpoint")


def due(it: int, every: int, total: int) -> bool:
    """Whether a checkpoint is written after iteration `it` (0-based): every `every` iterations and at the end."""
    return (it + 1) % every == 0 or it + 1 == total


def save(path, fmt: str, config: dict, fingerprint: dict, state, history, iteration: int, extra: dict | None = None):
    path = pathlib.Path(path)
    header = {"format": fmt, "checkpoint": True, "iteration": int(iteration), "config": config, "history": history,
              "target_fingerprint": fingerprint, "extra": extra or {}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, state)
    tmp.replace(path)  # atomic: an interrupted write never leaves a broken checkpoint


def load(path, fmt: str, config: dict, fingerprint: dict, state, *, length_dependent: bool):
    """(state, history, iteration, extra) from the checkpoint at `path`, after refusing any mismatch by name.

    state: a template of the training state (the freshly initialised model and optimiser state) the saved leaves
    are read into. length_dependent: the learning rate is a function of num_iterations, so it must match too.
    """
    path = check_path(path, "resume")
    if not path.exists():
        raise FileNotFoundError(f"resume={str(path)!r} does not exist")
    with open(path, "rb") as f:
        line = f.readline()
        try:
            header = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"resume={str(path)!r} is not a samplax training checkpoint (no JSON header)") from err
        if not isinstance(header, dict):
            raise ValueError(f"resume={str(path)!r} is not a samplax training checkpoint (no JSON header)")
        old = header.get("config") if isinstance(header.get("config"), dict) else {}
        if header.get("format") != fmt:
            raise ValueError(f"resume={str(path)!r} was written by {old.get('kind', '?')} training (format "
                             f"{header.get('format')!r}); this is {config['kind']} training (format {fmt!r}); resume "
                             f"with the same kind (or start a new run)")
        if not header.get("checkpoint"):
            raise ValueError(f"resume={str(path)!r} is a saved sampler, not a training checkpoint")
        free = tuple(k for k in FREE if not (length_dependent and k == "num_iterations"))
        keys = list(config) + [k for k in old if k not in config]
        diff = [k for k in keys if k not in free and old.get(k) != config.get(k)]
        if diff:
            raise ValueError(f"resume={str(path)!r} was written with different settings {diff}: "
                             + ", ".join(f"{k}={old.get(k)!r} (now {config.get(k)!r})" for k in diff)
                             + ("; the learning rate decays over num_iterations, so a resumed run must have the "
                                "same length" if "num_iterations" in diff else ""))
        if "target_fingerprint" not in header:
            raise ValueError(f"resume={str(path)!r} has no target fingerprint (written by an older samplax), so "
                             "its target cannot be checked; start a new training run")
        refuse_mismatch(path, header["target_fingerprint"], fingerprint)  # e.g. the same name, another log-density
        state = eqx.tree_deserialise_leaves(f, state)
    if header["iteration"] > config["num_iterations"]:
        raise ValueError(f"resume checkpoint is at iteration {header['iteration']} > num_iterations="
                         f"{config['num_iterations']}")
    return state, header["history"], int(header["iteration"]), header.get("extra", {})
