"""Load a user's numpyro model from `file.py:function` and its data from JSON or `.npz` (for the CLI)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import pathlib
import sys
from typing import Any, Callable

import numpy as np


class UserModelError(ValueError):
    """A user's model file, function or data could not be used; the message says which and why."""


def load_function(spec: str) -> Callable:
    """`path/to/file.py:name` -> the callable `name` defined in that file."""
    if ":" not in spec:
        raise UserModelError(f"model {spec!r}: give a built-in model name (see `samplax models`) or "
                             "FILE.py:FUNCTION, e.g. my_model.py:model")
    path_s, name = spec.rsplit(":", 1)
    path = pathlib.Path(path_s)
    if path.suffix != ".py":
        raise UserModelError(f"model file {str(path)!r} must be a Python file ending in .py")
    if not path.is_file():
        raise UserModelError(f"model file {str(path)!r} does not exist")
    if not name.isidentifier():
        raise UserModelError(f"{name!r} (after ':' in {spec!r}) is not a Python function name")
    module_name = f"samplax_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - re-raised naming the file
        sys.modules.pop(module_name, None)
        raise UserModelError(f"model file {str(path)!r} failed to import: {type(err).__name__}: {err}") from err
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name)
        raise UserModelError(f"model file {str(path)!r} has no function {name!r}; functions defined there: "
                             f"{', '.join(found) or 'none'}")
    fn = getattr(module, name)
    if not callable(fn):
        raise UserModelError(f"{name!r} in {str(path)!r} is a {type(fn).__name__}, not a function")
    return fn


def _to_array(key: str, value: Any, source: str):
    """A list as a numpy array; `source` names where it came from in errors ("data file 'd.json'", "--model-arg")."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    try:
        arr = np.asarray(value)
    except ValueError as err:  # ragged lists
        raise UserModelError(f"{source}: entry {key!r} is not a rectangular array ({err})") from err
    if arr.dtype == object:
        raise UserModelError(f"{source}: entry {key!r} is not a rectangular array of numbers")
    return arr


def load_data(path) -> dict[str, Any]:
    """Keyword arguments for the model from a JSON object or an `.npz` file (lists become numpy arrays)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserModelError(f"data file {str(path)!r} does not exist")
    if path.suffix == ".json":
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserModelError(f"data file {str(path)!r} is not valid JSON: {err}") from err
        if not isinstance(raw, dict):
            raise UserModelError(f"data file {str(path)!r} must hold a JSON object of argument name -> value, "
                                 f"got a {type(raw).__name__}")
        return {k: _to_array(k, v, f"data file {str(path)!r}") for k, v in raw.items()}
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: (f[k].item() if f[k].ndim == 0 else f[k]) for k in f.files}
        except (ValueError, OSError) as err:
            raise UserModelError(f"data file {str(path)!r} is not a readable .npz archive: {err}") from err
    raise UserModelError(f"data file {str(path)!r} must end in .json or .npz")


def check_arguments(fn: Callable, data: dict, spec: str) -> None:
    """Name missing and unknown arguments before the model runs."""
    sig = inspect.signature(fn)
    params = sig.parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in data if k not in params and not takes_kwargs]
    if unknown:
        raise UserModelError(f"{spec}: data has {unknown} but the function's arguments are {list(params)}")
    missing = [k for k, p in params.items() if p.default is p.empty and k not in data
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise UserModelError(f"{spec}: argument(s) {missing} have no default and are not in the data; "
                             "add them to the --data file")


def target_from_file(spec: str, data_path=None, name: str | None = None, extra: dict | None = None):
    """A samplax Target for the numpyro model `spec` (`file.py:function`) conditioned on `data_path`, plus
    `extra` arguments (the CLI's --model-arg; a name the data file also gives is refused, not replaced)."""
    from samplax.target import Target

    fn = load_function(spec)
    data = load_data(data_path) if data_path is not None else {}
    both = sorted(set(extra or {}) & set(data))
    if both:
        raise UserModelError(f"{spec}: argument(s) {both} given both in the --data file and as --model-arg; give "
                             "each once")
    data = {**data, **{k: _to_array(k, v, "--model-arg") for k, v in (extra or {}).items()}}
    check_arguments(fn, data, spec)
    try:
        return Target.from_numpyro(fn, name=name or fn.__name__, model_kwargs=data)
    except (ValueError, TypeError) as err:
        shapes = ", ".join(f"{k}={np.shape(v) if np.ndim(v) else repr(v)}" for k, v in data.items())
        raise UserModelError(f"{spec}: {err} (data argument shapes: {shapes or 'no data'}; "
                             "check them against the model's plates)") from err
