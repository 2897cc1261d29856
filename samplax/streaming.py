"""Streaming a chain run to a zarr store: `sample(..., out="run.zarr")`.

Each chunk of draws leaves the device, is turned into the DataTree groups an in-memory run would have
(`results.draw_groups`, the same code) and appended along `draw` to `<out>.tmp-<pid>`; nothing of it stays
in host memory. `finish` writes the warmup groups and the run's attrs, consolidates the metadata and only
then renames the store to `out`, so a run that fails or is killed never leaves a store at `out` (a killed
one leaves its `.tmp-<pid>` directory, named as such). `load(out)` gives the same DataTree as the
in-memory run.

Options:
- `keep=["mu", "tau"]`: only these posterior variables are written (sample_stats, log_likelihood and the
  data groups are written in full; log_likelihood is computed from all variables).
- `moments_only=True`: no draws are written. Per chain, the running mean and variance (ddof=0, Chan et
  al.'s parallel update of (count, mean, M2) in float64, chunk by chunk) of every kept constrained variable
  are kept in memory and written at the end, with per-chain summaries of the sample stats. The store and the
  returned DataTree then hold the groups `posterior_mean` and `posterior_variance` (dims (chain, *variable
  dims), attrs `ddof` = 0 and `num_draws`), `sample_stats_summary` (chain): `num_draws`, `<stat>_count` for
  boolean stats (e.g. `diverging_count`), `<stat>_sum` for counts (`n_grad_sum`, `tree_depth_sum`) and
  `<stat>_mean` for the others; plus `observed_data` / `constant_data` for numpyro models. There is no
  `posterior`, `sample_stats` or `log_likelihood` group, so draw-based diagnostics (ESS, R-hat) are not
  available from such a run.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import warnings
from typing import Any

import numpy as np

from samplax.results import (BOOL_STATS, INT_STATS, _clean_stats, clean, constrain_draws, draw_groups, group_datasets,
                              load, replace_path)

MAX_CHUNK_VALUES = 2**19  # draws per streamed chunk are capped at this many values (4 MB of float64)


def check(target, out, keep, moments_only, overwrite, checkpoint=None, resume=None):
    """Validate the streaming options before any sampling; a `StreamWriter` for `out`, or None without it."""
    if out is None:
        for name, value in (("keep", keep), ("moments_only", moments_only), ("overwrite", overwrite)):
            if value not in (None, False):
                raise ValueError(f"{name}={value!r} applies to runs streamed to a zarr store; pass out='run.zarr' too")
        return None
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path ending in .zarr (str or pathlib.Path), got {type(out).__name__}")
    path = pathlib.Path(out)
    if path.suffix != ".zarr":
        raise ValueError(f"out must end in .zarr (the run is streamed to a zarr store), got {str(path)!r}")
    if checkpoint is not None or resume is not None:
        raise ValueError("out= cannot be combined with checkpoint= or resume= (a streamed run is not resumable "
                         "yet); drop one of them")
    if path.exists():
        if not overwrite:
            raise ValueError(f"out: {str(path)!r} already exists; choose another path or pass overwrite=True "
                             "(the old store is replaced only once the new run is complete)")
        if not (path / "zarr.json").exists() and not (path / ".zgroup").exists():
            raise ValueError(f"out: {str(path)!r} exists and is not a zarr store; overwrite=True only replaces a "
                             "zarr store. Choose another path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"out: {str(parent)!r} is a file, so {str(path)!r} cannot be created")
            break
    if not isinstance(moments_only, (bool, np.bool_)):
        raise ValueError(f"moments_only must be True or False, got {moments_only!r}")
    return StreamWriter(target, path, keep=_check_keep(target, keep), moments_only=bool(moments_only),
                        overwrite=bool(overwrite))


def _check_keep(target, keep):
    if keep is None:
        return None
    if isinstance(keep, str):
        keep = [keep]
    if not isinstance(keep, (list, tuple, set)) or not keep or not all(isinstance(k, str) for k in keep):
        raise ValueError(f"keep must be a non-empty list of variable names, got {keep!r}")
    import jax
    import jax.numpy as jnp

    names = list(jax.eval_shape(target.constrain, jnp.zeros(target.dim)))
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise ValueError(f"keep: {unknown} are not variables of target {target.name!r}; its variables: {names}")
    return [k for k in names if k in keep]  # the target's order


def chunk_draws(num_samples: int, num_chains: int, dim: int, default: int) -> int:
    """Draws per chunk when streaming: `default`, capped (at a power of two) so a chunk holds at most
    MAX_CHUNK_VALUES values. The last chunk's length is a runtime value, so one compiled program serves all."""
    cap = max(1, MAX_CHUNK_VALUES // (num_chains * max(dim, 1)))
    return min(default, 1 << (cap.bit_length() - 1))


def _chan(state, x):
    """Chan et al.'s parallel update of per-chain (count, mean, M2) with a chunk x of shape (chain, n, ...)."""
    x = np.asarray(x, dtype=np.float64)
    n_b = x.shape[1]
    mean_b = x.mean(axis=1)
    m2_b = np.square(x - mean_b[:, None]).sum(axis=1)
    if state is None:
        return n_b, mean_b, m2_b
    n_a, mean_a, m2_a = state
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + np.square(delta) * (n_a * n_b / n)


class StreamWriter:
    """Appends a run's chunks of draws to `<out>.tmp-<pid>`; `finish` renames it to `out`."""

    def __init__(self, target, out: pathlib.Path, *, keep=None, moments_only: bool = False, overwrite: bool = False):
        self.target, self.out, self.keep, self.moments_only = target, pathlib.Path(out), keep, moments_only
        self.overwrite = overwrite
        self.tmp = self.out.with_name(f"{self.out.name}.tmp-{os.getpid()}")
        self.num_draws = None  # per chain, for the log_likelihood size check; set by the run loop
        self.t = 0  # draws written so far (per chain)
        self.dims = None
        self.started = False
        self.moments: dict[str, Any] = {}
        self.stat_sums: dict[str, np.ndarray] = {}
        self.nonfinite: dict[str, list[int]] = {}  # written variable -> [NaN/inf values, all values] so far

    # a failure anywhere between the first append and the rename removes the temporary store
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False

    def abort(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def append(self, positions: np.ndarray, stats: dict[str, np.ndarray]) -> None:
        """Write one chunk: positions (chain, n, dim) unconstrained, stats {name: (chain, n)}."""
        if self.moments_only:
            self._update_moments(positions, stats)
        else:
            self._write_draws(positions, stats)
        self.t += positions.shape[1]

    def _filter(self, data):
        if self.keep is not None:
            for group in ("posterior", "warmup_posterior"):
                if group in data:
                    data[group] = {k: v for k, v in data[group].items() if k in self.keep}

    def _write_draws(self, positions, stats):
        data, dims = draw_groups(self.target, positions, stats, total_draws=self.num_draws)
        self.dims = dims if self.dims is None else self.dims
        self._filter(data)
        for name, x in data.get("posterior", {}).items():  # every draw's, for a trust check that reads every k-th
            x = np.asarray(x)
            if np.issubdtype(x.dtype, np.inexact):
                c = self.nonfinite.setdefault(name, [0, 0])
                c[0] += int((~np.isfinite(x)).sum())
                c[1] += int(x.size)
        first = not self.started
        if first:
            self._create()
        for name, ds in group_datasets(data, dims).items():
            if "draw" in ds.dims:
                ds = ds.assign_coords(draw=ds["draw"] + self.t)
                if not first:  # coordinates without `draw` (plates) were written with the first chunk
                    ds = ds.drop_vars([c for c in ds.coords if "draw" not in ds[c].dims])
                    ds.to_zarr(self.tmp, group=name, mode="a", append_dim="draw", consolidated=False)
                    continue
            elif not first:
                continue  # observed / constant data: written once
            ds.to_zarr(self.tmp, group=name, mode="a", consolidated=False)

    def _create(self):
        import xarray as xr

        if self.tmp.exists():  # left by a killed run of this process id
            shutil.rmtree(self.tmp)
        xr.Dataset().to_zarr(self.tmp, mode="w-", consolidated=False)
        self.started = True

    def _update_moments(self, positions, stats):
        posterior = constrain_draws(self.target, np.asarray(positions))
        for k, x in posterior.items():
            if self.keep is None or k in self.keep:
                self.moments[k] = _chan(self.moments.get(k), x)
        for k, v in _clean_stats(stats).items():
            if v.dtype == bool or k in BOOL_STATS:
                name, total = f"{k}_count", np.sum(v, axis=1, dtype=np.int64)
            elif k in INT_STATS:
                name, total = f"{k}_sum", np.sum(v, axis=1)
            else:
                self.moments[f"stat:{k}"] = _chan(self.moments.get(f"stat:{k}"), v)
                continue
            self.stat_sums[name] = total if name not in self.stat_sums else self.stat_sums[name] + total

    def _moments_tree(self, attrs):
        import xarray as xr
        from arviz_base import dict_to_dataset, from_dict

        from samplax.numpyro_groups import observed_and_constant, site_dims

        dims = site_dims(self.target)
        names = [k for k in self.moments if not k.startswith("stat:")]
        mean = {k: self.moments[k][1] for k in names}
        var = {k: self.moments[k][2] / self.moments[k][0] for k in names}
        summary = {"num_draws": np.full(len(next(iter(self.moments.values()))[1]), self.t, dtype=np.int64),
                   **{f"{k[5:]}_mean": m[1] for k, m in self.moments.items() if k.startswith("stat:")},
                   **self.stat_sums}
        kw = dict(sample_dims=["chain"], check_conventions=False)
        groups = {
            "posterior_mean": dict_to_dataset(mean, dims=dims, attrs={"num_draws": self.t}, **kw),
            "posterior_variance": dict_to_dataset(var, dims=dims, attrs={"num_draws": self.t, "ddof": 0}, **kw),
            "sample_stats_summary": dict_to_dataset(summary, attrs={"num_draws": self.t}, **kw),
        }
        observed, constant = observed_and_constant(self.target)
        data = {k: v for k, v in (("observed_data", observed), ("constant_data", constant)) if v}
        if data:
            static = from_dict(data, dims={k: v for k, v in dims.items() if k in observed} or None)
            groups.update({name: node.to_dataset() for name, node in static.children.items()})
        return xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **groups})

    def finish(self, attrs: dict[str, Any], *, warmup_positions=None, warmup_stats=None):
        """Write the warmup groups and attrs, consolidate, rename to `out`; the store opened lazily."""
        import zarr

        attrs = {k: _json(v) for k, v in clean({**attrs, "out": str(self.out)}).items()}
        try:
            if self.moments_only:
                if self.tmp.exists():
                    shutil.rmtree(self.tmp)
                self._moments_tree(attrs).to_zarr(self.tmp, mode="w-", consolidated=False)
            else:
                if warmup_positions is not None or warmup_stats:
                    data, _ = draw_groups(self.target, None, None, warmup_positions=warmup_positions,
                                          warmup_stats=warmup_stats, extras=False)
                    self._filter(data)
                    for name, ds in group_datasets(data, self.dims).items():
                        ds.to_zarr(self.tmp, group=name, mode="a", consolidated=False)
                root = zarr.open_group(self.tmp, mode="r+")
                root.attrs.update(attrs)
                if "posterior" in root:
                    root["posterior"].attrs.update(attrs)
            with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec (xarray reads it)
                warnings.simplefilter("ignore")
                zarr.consolidate_metadata(self.tmp)
        except BaseException:
            self.abort()
            raise
        self._rename()
        return load(self.out, lazy=True)

    def _rename(self):
        if self.out.exists() and not self.overwrite:
            raise FileExistsError(f"out: {str(self.out)!r} appeared while sampling; the run is kept at "
                                  f"{str(self.tmp)!r} (rename it to a .zarr path to load it)")
        replace_path(self.tmp, self.out)  # overwrite=True: the old store goes only once the new one is in place


TRUST_DRAWS = 1000  # a streamed run's trust check reads at most this many draws per chain (every k-th one)


def _thinned(path):
    """The store's every k-th draw in memory (at most TRUST_DRAWS per chain), read one stored chunk at a time
    into one preallocated array per variable, so the check holds the kept draws and one chunk whatever the
    run's length (a step-sliced lazy view re-read whole chunks at every use: 4 MB more for 10x the draws in
    tests/test_streaming.py)."""
    lazy = load(path, lazy=True)
    k = -(-int(lazy["posterior"].sizes["draw"]) // TRUST_DRAWS)

    def thin(ds):
        if "draw" not in ds.dims:
            return ds.load()
        kept = ds.isel(draw=slice(None, None, k))
        for name, var in ds.data_vars.items():
            if "draw" not in var.dims:
                continue
            axis, n = var.dims.index("draw"), var.shape[var.dims.index("draw")]
            chunk = (var.encoding.get("chunks") or var.encoding.get("preferred_chunks", {}).get("draw") or (n,))
            chunk = chunk[axis] if isinstance(chunk, tuple) else int(chunk)
            out = np.empty(kept[name].shape, var.dtype)
            for c0 in range(0, n, chunk):  # the kept draws of stored chunk [c0, c0 + chunk)
                first = -(-c0 // k) * k
                if first >= min(c0 + chunk, n):
                    continue
                index = [slice(None)] * var.ndim
                index[axis] = slice(first // k, first // k + len(range(first, min(c0 + chunk, n), k)))
                out[tuple(index)] = var.isel(draw=slice(first, min(c0 + chunk, n), k)).values
            kept[name] = kept[name].copy(data=out)
        return kept.load()

    return lazy.map_over_datasets(thin), k


def moments_findings(dt) -> list[str]:
    """What a `moments_only` run's own counts and moments show: divergences (from `sample_stats_summary`, every
    step's with thinning) and variables whose running mean or variance is not finite (NaN/inf draws)."""
    from samplax.diagnostics.mixing import NONFINITE_DRAWS, divergence_findings

    out = []
    bad = [str(k) for k in dt["posterior_mean"].data_vars
           if not (np.all(np.isfinite(np.asarray(dt["posterior_mean"][k])))
                   and np.all(np.isfinite(np.asarray(dt["posterior_variance"][k]))))]
    if bad:
        out.append(f"{NONFINITE_DRAWS} in {len(bad)} variable(s) ({', '.join(bad[:5])}"
                   f"{', ...' if len(bad) > 5 else ''}): their running means or variances are not finite, so they "
                   "cannot be estimated (a NaN/inf the sampler met, or a deterministic site that overflows: check "
                   "the model there).")
    s = dt["sample_stats_summary"]
    n = np.asarray(s["num_draws"], dtype=np.float64)

    def count(thinned, flag):  # per chain: a thinned run's every-step count, else the kept draws' flags
        if f"{thinned}_mean" in s:
            return np.rint(np.asarray(s[f"{thinned}_mean"], dtype=np.float64) * n)
        return np.asarray(s[f"{flag}_count"], dtype=np.float64) if f"{flag}_count" in s else np.zeros_like(n)

    div = count("n_divergent", "diverging")
    # a divergence that met a NaN/inf: HMC-like samplers flag it `diverging_nonfinite`, reverting ones (MCLMC,
    # sECD) `nonfinite`, whose divergences are exactly their reverted steps
    nan_div = count("n_divergent_nonfinite", "diverging_nonfinite" if "diverging_nonfinite_count" in s else "nonfinite")
    if "nonfinite_count" in s:  # reverted steps are reported once, as such, by count_findings
        div, nan_div = div - nan_div, np.zeros_like(nan_div)
    return out + divergence_findings(div, nan_div)


def record_trust(dt, writer, *, stacklevel: int = 3, extra: list[str] = ()) -> None:
    """The trust check of a streamed run, written into the finished store's attrs too.

    It reads a separately opened view of the store thinned to TRUST_DRAWS draws per chain, so the returned run
    stays lazy and the check's memory does not grow with the run (R-hat and ESS of every k-th draw are
    conservative). A `moments_only` store has no draws: its counts, divergences and running moments are judged
    there (`moments_findings`), R-hat and ESS cannot be."""
    import zarr

    from samplax.diagnostics.mixing import NONFINITE_DRAWS, nonfinite_finding
    from samplax.diagnostics.trust import verify

    if writer.moments_only:
        note = ("note: moments_only=True keeps no draws, so R-hat and ESS were not checked (divergences and "
                "non-finite values were, from the running counts and moments).")
        verify(dt, stacklevel=stacklevel + 1, extra=[note, *extra, *moments_findings(dt)], draws=False)
    else:
        probe, k = _thinned(writer.out)
        extra, replaces = list(extra), ()
        if k > 1:
            extra.append(f"note: the trust check of this streamed run read every {k}th draw ({TRUST_DRAWS} per "
                         "chain at most), so its ESS figures are conservative.")
            # non-finite values are counted over every draw written, not only the ones the check reads
            replaces = (NONFINITE_DRAWS,)
            bad = {name: tuple(c) for name, c in writer.nonfinite.items() if c[0]}
            if bad:
                extra.append(nonfinite_finding(bad, ", counted over every draw written"))
        verify(probe, stacklevel=stacklevel + 1, extra=extra, replaces=replaces)
        record = {key: probe.attrs[key] for key in ("trusted", "trust_findings")}
        dt.attrs.update(record)
        if "posterior" in dt.children:
            dt["posterior"].attrs.update(record)
    root = zarr.open_group(writer.out, mode="r+")
    record = {key: dt.attrs[key] for key in ("trusted", "trust_findings")}
    root.attrs.update(record)
    if "posterior" in root:  # as in an in-memory run: the posterior group carries the run's attrs too
        root["posterior"].attrs.update(record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(writer.out)


def _json(v):
    """numpy scalars and arrays as the Python values zarr's JSON attributes hold."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
