"""Turn raw chain output into an ArviZ DataTree; save and load it."""

from __future__ import annotations

import functools
import pathlib
import platform
from typing import Any

import jax
import numpy as np

from samplax.target import Target

BOOL_STATS = {"diverging", "diverging_nonfinite"}
INT_STATS = {"n_grad", "tree_depth"}


def constrain_draws(target: Target, positions: np.ndarray, batch: int = 4096) -> dict[str, np.ndarray]:
    """Constrained named values for positions of shape (chain, draw, dim), in batches to bound memory."""
    chains, draws, dim = positions.shape
    flat = positions.reshape(chains * draws, dim)
    fn = _constrain_fn(target.constrain)
    parts = [jax.device_get(fn(flat[i:i + batch])) for i in range(0, max(len(flat), 1), batch)]
    out = {}
    for k in parts[0]:
        arr = np.concatenate([np.asarray(p[k]) for p in parts], axis=0)
        out[k] = arr.reshape((chains, draws) + arr.shape[1:])
    return out


@functools.lru_cache(maxsize=8)
def _constrain_fn(constrain):
    """One compiled batch constraint per target (a streamed run constrains every chunk with it)."""
    return jax.jit(jax.vmap(constrain))


def _clean_stats(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in stats.items():
        v = np.asarray(v)
        if k in BOOL_STATS:
            v = v.astype(bool)
        elif k in INT_STATS and np.all(np.isfinite(v)):  # an unknown count stays NaN, never a garbage integer
            v = v.astype(np.int64)
        out[k] = v
    return out


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("samplax", "jax", "blackjax", "numpyro", "arviz-base", "arviz-stats"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def to_datatree(target: Target, positions, stats, *, warmup_positions=None, warmup_stats=None,
                attrs: dict[str, Any] | None = None):
    """DataTree with `posterior`, `sample_stats`, optional `warmup_posterior`/`warmup_sample_stats`."""
    data, dims = draw_groups(target, positions, stats, warmup_positions=warmup_positions, warmup_stats=warmup_stats)
    return assemble(data, dims, attrs)


def draw_groups(target: Target, positions=None, stats=None, *, warmup_positions=None, warmup_stats=None,
                extras: bool = True, total_draws: int | None = None) -> tuple[dict[str, dict], dict[str, list]]:
    """The DataTree's groups as {group: {variable: array}} and the dims of every variable.

    Draws (positions and stats) may be a whole run or one chunk of it (`samplax.streaming` appends chunks):
    every value of a draw depends on that draw only. `extras`: the numpyro groups (log_likelihood,
    observed_data, constant_data); `total_draws` (per chain) decides whether log_likelihood is too big when
    `positions` is only a chunk of the run.
    """
    data: dict[str, dict] = {}
    if positions is not None:
        data["posterior"] = constrain_draws(target, np.asarray(positions))
    if stats is not None:
        data["sample_stats"] = _clean_stats(stats)
    if warmup_positions is not None:
        data["warmup_posterior"] = constrain_draws(target, np.asarray(warmup_positions))
    if warmup_stats:
        data["warmup_sample_stats"] = _clean_stats(warmup_stats)
    if not extras:
        return data, {}
    groups, dims = _numpyro_extras(target, data["posterior"], total_draws)
    data.update(groups)
    return data, dims


def assemble(data: dict[str, dict], dims: dict[str, list] | None, attrs: dict[str, Any] | None = None):
    """`draw_groups`' output as a DataTree; `attrs` (made netCDF/zarr-safe) on the root and on `posterior`."""
    from xarray import DataTree

    clean_attrs = clean(attrs)
    dt = DataTree.from_dict(group_datasets(data, dims))
    dt.attrs.update(clean_attrs)
    if "posterior" in dt.children:
        dt["posterior"].attrs.update(clean_attrs)
    return dt


def group_datasets(data: dict[str, dict], dims: dict[str, list] | None) -> dict:
    """One xarray Dataset per group, as `arviz_base.from_dict(data, save_warmup=True, dims=dims)` makes them,
    without building a DataTree (whose parent links are reference cycles: a streamed run would leave each
    chunk's arrays to the cyclic garbage collector)."""
    from arviz_base import dict_to_dataset

    # `dims` name the model sites' axes: only groups of site values get them (a sampler's stat, e.g. mclmc's `L`,
    # or a model argument may share a site's name -- an LKJ factor `L` -- and must not take that site's dims)
    return {group: dict_to_dataset(values, dims=(dims or None) if _holds_sites(group) else None,
                                   sample_dims=[] if "data" in group else None,
                                   skip_event_dims="log_likelihood" in group)
            for group, values in data.items()}


def _holds_sites(group: str) -> bool:
    return not (group.endswith("_stats") or group == "constant_data")


def clean(attrs: dict[str, Any] | None) -> dict[str, Any]:
    return {k: _attr(v) for k, v in (attrs or {}).items()}


# Above this many pointwise values the log_likelihood group is skipped (with a warning): it would dwarf the draws.
MAX_LOG_LIKELIHOOD_VALUES = 50_000_000


def _numpyro_extras(target, posterior, total_draws=None):
    """log_likelihood / observed_data / constant_data groups and plate-named dims for numpyro targets."""
    import warnings

    from samplax.numpyro_groups import numpyro_groups, observed_and_constant, site_dims

    if "model" not in target.info:
        return {}, {}
    chains, draws = next(iter(posterior.values())).shape[:2]
    draws = draws if total_draws is None else total_draws
    observed, _ = observed_and_constant(target)
    n = chains * draws * sum(max(o.size, 1) for o in observed.values())
    if n > MAX_LOG_LIKELIHOOD_VALUES:
        warnings.warn(f"log_likelihood group skipped: {n:,} pointwise values (> {MAX_LOG_LIKELIHOOD_VALUES:,}); "
                      "compute it for fewer draws with samplax.numpyro_groups.pointwise_log_likelihood",
                      RuntimeWarning, stacklevel=5)
        groups, dims = {"observed_data": observed}, site_dims(target)
        return groups, {k: v for k, v in dims.items() if k in posterior or k in observed}
    groups, dims = numpyro_groups(target, posterior)
    return groups, {k: v for k, v in dims.items() if k in posterior or k in observed}


def _attr(v):
    """netCDF attrs accept numbers, strings and 1D arrays; nested settings become strings."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, float, str, np.integer, np.floating)):
        return v
    if isinstance(v, np.ndarray) and v.ndim <= 1 and v.dtype.kind in "if":
        return v
    return repr(v)


def replace_path(tmp: pathlib.Path, path: pathlib.Path) -> None:
    """Move the complete `tmp` (a file or a store directory) onto `path`. A file replaces atomically; an old
    directory at `path` is moved aside first and removed only once `tmp` is in place, so at every instant one
    complete copy exists under a recognisable name."""
    import os
    import shutil

    if not path.exists() or (path.is_file() and tmp.is_file()):
        os.replace(tmp, path)
        return
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def save(dt, path) -> pathlib.Path:
    """Write to netCDF (`.nc`) or zarr (`.zarr`) by the path's suffix.

    Atomic: written under a temporary name in the same folder and moved onto `path` only when complete
    (`replace_path`), so a save that fails half-way leaves no file that looks complete (and an older file at
    `path` intact)."""
    import os
    import shutil

    path = pathlib.Path(path)
    if path.suffix not in (".nc", ".zarr"):
        raise ValueError(f"save: path must end in .nc or .zarr, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        if path.suffix == ".nc":
            dt.to_netcdf(tmp, engine="h5netcdf")
        else:
            dt.to_zarr(tmp, mode="w")
        replace_path(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
    return path


def load(path, lazy: bool = False):
    """A saved run (`.nc`) or a saved or streamed one (`.zarr`, `sample(..., out=...)`) as a DataTree.

    lazy: leave the values on disk until used (for runs bigger than memory; `.zarr` only).
    """
    import xarray as xr

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {str(path)!r}")
    if path.suffix == ".nc":
        if lazy:
            raise ValueError(f"load: lazy=True needs a .zarr store, got {str(path)!r}")
        return xr.open_datatree(path, engine="h5netcdf").load()
    if path.suffix == ".zarr":
        dt = xr.open_datatree(path, engine="zarr")
        return dt if lazy else dt.load()
    raise ValueError(f"load: path must end in .nc or .zarr, got {str(path)!r}")
