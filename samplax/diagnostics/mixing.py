"""Mixing diagnostics: R-hat, ESS, MCSE (from arviz-stats), E-BFMI, divergences, plain-language checks."""

from __future__ import annotations

import numpy as np

from samplax import checks
from samplax.samplers.base import NONFINITE_FLAGS

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3
ENERGY_VAR_FACTOR = 10.0  # Var[energy change] / d above this x desired_energy_var flags an unadjusted run
NONFINITE_DRAWS = "the draws hold NaN/inf values"  # how the finding about them begins (streaming.py says it too)
CONSTANT_RTOL = 1e-12  # an entry whose sd is below this x |mean| does not vary (a fixed 0.3 has sd ~1e-16 in float64)


def _as_datatree(data, var_name: str = "x"):
    """Accept a DataTree, or an array (chain, draw, *shape) which becomes one posterior variable."""
    if hasattr(data, "children") or hasattr(data, "groups"):
        return data
    from arviz_base import from_dict

    if isinstance(data, dict):
        raise ValueError("draws must be a DataTree or one array (chain, draw, ...); for named variables build a "
                         "DataTree: arviz_base.from_dict({'posterior': {...}})")
    arr = np.asarray(data)
    if arr.ndim < 2:
        raise ValueError(f"draws must have shape (chain, draw, ...), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.size == 0:
        raise ValueError(f"draws must hold at least one chain, one draw and one entry, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(float)  # an indicator's draws: its mean is the probability
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"draws must be numbers, got dtype {arr.dtype}")
    return from_dict({"posterior": {var_name: arr}})


def summary(data, *, var_names=None, kind: str = "all", round_to="none", ci_prob: float = 0.94):
    """Per-variable table (pandas): mean, sd, CI, mcse_mean, mcse_sd, ess_bulk, ess_tail, r_hat."""
    from arviz_stats import summary as az_summary

    import warnings

    if not checks.is_real(ci_prob) or not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be a number in (0, 1), got {ci_prob!r}")
    dt = _as_datatree(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az_summary(dt, var_names=var_names, kind=kind, round_to=round_to, ci_prob=ci_prob)
    # constant entries (e.g. the fixed first row of an LKJ Cholesky factor) make arviz divide 0 by 0 for their
    # R-hat: that is expected, not a problem; any other warning is passed on
    constant = "sd" in table and bool(constant_rows(table).any())
    for w in caught:
        if not (constant and issubclass(w.category, RuntimeWarning) and "invalid value" in str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return table


def is_constant(sd, mean):
    """Entries whose draws do not vary, from their sd and mean (arrays or numbers): sd 0, or only the rounding of
    their mean. NaN sd or mean: False (non-finite draws are not constant)."""
    return (sd == 0) | (sd <= CONSTANT_RTOL * np.abs(mean))


def constant_rows(table):
    """Boolean Series: the summary rows whose draws do not vary (`is_constant`)."""
    return is_constant(table["sd"].astype(float), table["mean"].astype(float))


def stuck_chains(data) -> list[int]:
    """Chains (of at least 2 draws) in which no entry ever changed: every draw equals the chain's first."""
    dt = _as_datatree(data)
    post = dt["posterior"]
    if post.sizes.get("draw", 0) < 2 or not post.data_vars:
        return []
    same = np.ones(_num_chains(dt), bool)
    for v in post.data_vars.values():
        a = np.asarray(v)
        same &= np.all((a == a[:, :1]).reshape(a.shape[0], -1), axis=1)
    return np.flatnonzero(same).tolist()


def ebfmi(data) -> np.ndarray:
    """E-BFMI per chain from `sample_stats.energy` (Betancourt 2016); NaN when there is no energy.

    A thinned run's kept draws also carry `energy_first` and `energy_diff_sq` (each window's first energy and the
    sum of its squared step-to-step changes): the mean squared change is then over every step, as unthinned."""
    dt = _as_datatree(data)
    if "sample_stats" not in dt or "energy" not in dt["sample_stats"]:
        return np.full(_num_chains(dt), np.nan)
    ss = dt["sample_stats"]
    energy = np.asarray(ss["energy"])
    if "energy_diff_sq" in ss and "energy_first" in ss:
        first, within = np.asarray(ss["energy_first"]), np.asarray(ss["energy_diff_sq"])
        across = (first[:, 1:] - energy[:, :-1]) ** 2  # from each window's last step to the next one's first
        steps = int(dt.attrs.get("thinning", 1)) * energy.shape[1]
        num = (within.sum(axis=1) + across.sum(axis=1)) / (steps - 1)
    else:
        num = np.mean(np.diff(energy, axis=1) ** 2, axis=1)
    den = np.var(energy, axis=1, ddof=1)  # Betancourt's sum of squared changes over sum of squared deviations
    return num / den


def entry_label(da, idx: tuple) -> str:
    """The summary row label of entry `idx` of posterior variable `da` (dims chain, draw, ...), as arviz-stats writes
    it: `s`, `m[0, 1]`, `theta[Choate]` (the entry's coordinate values, or its position where a dim has none)."""
    if idx == ():
        return str(da.name)
    vals = [str(da[d].values[i]) if d in da.coords else str(i) for d, i in zip(da.dims[2:], idx)]
    return f"{da.name}[{', '.join(vals)}]"


def nonfinite_draws(dt) -> dict:
    """{variable: (NaN/inf values, all values, label of its first entry with one)} for each posterior variable with a
    non-finite draw. R-hat and ESS rank the draws, so they stay finite when every non-finite value has one sign
    (+inf draws of a deterministic site that overflows): their finiteness says nothing about the draws'."""
    out = {}
    for name, v in dt["posterior"].data_vars.items():
        a = np.asarray(v)
        if np.issubdtype(a.dtype, np.inexact):
            bad = ~np.isfinite(a)
            if bad.any():
                first = np.argwhere(bad.reshape(-1, *a.shape[2:]))[0][1:]
                out[str(name)] = (int(bad.sum()), int(a.size), entry_label(v, tuple(int(i) for i in first)))
    return out


def nonfinite_finding(bad: dict, where: str = "") -> str:
    """The finding for {variable: (NaN/inf values, all values[, label of its first entry with one])}; `where` says
    which draws were counted (a streamed run's writer counts every draw it writes)."""
    name, (k, size, *first) = next(iter(bad.items()))
    at = f", the first in {first[0]}" if first else ""
    return (f"{NONFINITE_DRAWS}: {sum(v[0] for v in bad.values())} value(s) in {len(bad)} variable(s) (e.g. {k} of "
            f"the {size} values of {name}{at}){where}; their means and sds are not finite, so they cannot be "
            "estimated or judged (a NaN/inf the sampler met, or a deterministic site that overflows: check the model "
            "there).")


def divergences(data) -> np.ndarray:
    """Number of divergent transitions per chain (zeros when the sampler reports none); in a thinned run every
    step's, from `n_divergent` (a kept draw's `diverging` only says whether any step in its window diverged)."""
    dt = _as_datatree(data)
    if "sample_stats" not in dt or "diverging" not in dt["sample_stats"]:
        return np.zeros(_num_chains(dt), int)
    if "n_divergent" in dt["sample_stats"]:
        return np.asarray(dt["sample_stats"]["n_divergent"]).sum(axis=1)
    return np.asarray(dt["sample_stats"]["diverging"]).sum(axis=1)


def _num_chains(dt) -> int:
    return int(dt["posterior"].sizes["chain"])


def gradient_count(dt) -> float:
    """All gradient evaluations of a run (warmup + sampling), from attrs or else `sample_stats.n_grad`.

    NaN when unknown (a run that is not samplax's, or a user kernel that does not report its count):
    never a guess, so ESS per gradient is NaN rather than nonsense.
    """
    a = dt.attrs
    if "n_grad_sampling" in a and attrs_describe_draws(dt):
        total = float(a.get("n_grad_warmup", 0)) + float(a["n_grad_sampling"])
        return total if np.isnan(total) else int(total)
    if "sample_stats" in dt.children and "n_grad" in dt["sample_stats"]:
        total = float(np.asarray(dt["sample_stats"]["n_grad"], dtype=float).sum())
        if "n_grad_sampling" in a:  # a subset of a run: its draws' own gradients, plus the warmup of its chains
            same_chains = int(a.get("num_chains", -1)) == _num_chains(dt)
            total += float(a.get("n_grad_warmup", 0)) if same_chains else float("nan")
        return total if np.isnan(total) else int(total)
    return float("nan")


def attrs_describe_draws(dt) -> bool:
    """Whether a run's attrs (its counts, its trust verdict) are about the draws it holds: False for a subset
    (`dt.isel(draw=slice(0, 15))` keeps the whole run's attrs). Runs without the sizes in attrs: True."""
    if "posterior" not in dt.children:
        return True
    a, post = dt.attrs, dt["posterior"]
    want = {"chain": a.get("num_chains"),
            "draw": a.get("num_particles") if "num_particles" in a else a.get("num_samples")}
    return all(v is None or int(v) == int(post.sizes.get(k, -1)) for k, v in want.items())


def ess_per_gradient(data, var_names=None) -> dict[str, float]:
    """min bulk ESS over a variable's elements, divided by all gradient evaluations (warmup + sampling)."""
    from arviz_stats import ess

    dt = _as_datatree(data)
    grads = gradient_count(dt)
    e = ess(dt, var_names=var_names, method="bulk")
    e = e["posterior"] if hasattr(e, "children") and "posterior" in e.children else e
    if not grads or np.isnan(grads):  # unknown (or no) gradient count: say so with NaN, never divide by a guess
        return {k: float("nan") for k in e.data_vars}
    return {k: float(np.min(np.asarray(v))) / grads for k, v in e.data_vars.items()}


def check(data, *, rhat_max: float | None = None, ess_per_chain_min: float | None = None,
          ebfmi_min: float | None = None) -> list[str]:
    """Plain-language findings; an empty list (or only "note: ..." entries) means no problem was detected.

    Thresholds (None: the defaults): rhat_max (chains RHAT_MAX, populations POP_RHAT_MAX), ess_per_chain_min
    (ESS_PER_CHAIN_MIN), ebfmi_min (EBFMI_MIN). Population runs (SMC, FKC, diffusion samplers) get the checks that
    fit them (`samplax.diagnostics.population.check`, with rhat_max when given); chain diagnostics are never
    computed along a particle index, so the ESS and E-BFMI floors are refused there rather than ignored.
    """
    from samplax.diagnostics.population import POP_RHAT_MAX, check as population_check, is_population

    for name, v, low, default in (("rhat_max", rhat_max, 1.0, f"{RHAT_MAX}, populations {POP_RHAT_MAX}"),
                                  ("ess_per_chain_min", ess_per_chain_min, 0.0, ESS_PER_CHAIN_MIN),
                                  ("ebfmi_min", ebfmi_min, 0.0, EBFMI_MIN)):
        if v is not None and (not checks.is_real(v) or not v >= low):
            raise ValueError(f"{name} must be a number >= {low:g} (default {default}), got {v!r}")
    dt = _as_datatree(data)
    if is_population(dt):
        given = [n for n, v in (("ess_per_chain_min", ess_per_chain_min), ("ebfmi_min", ebfmi_min)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} judge chains; this is a population run (particles, not draws "
                             "along a chain): only rhat_max (between populations) applies")
        return population_check(dt) if rhat_max is None else population_check(dt, rhat_max=rhat_max)
    rhat_max = RHAT_MAX if rhat_max is None else rhat_max
    ess_per_chain_min = ESS_PER_CHAIN_MIN if ess_per_chain_min is None else ess_per_chain_min
    ebfmi_min = EBFMI_MIN if ebfmi_min is None else ebfmi_min
    table = summary(dt)
    n_chains = _num_chains(dt)
    out = []
    stuck = stuck_chains(dt)
    if stuck:
        acc = ""
        if "sample_stats" in dt.children and "acceptance_rate" in dt["sample_stats"]:
            a = np.asarray(dt["sample_stats"]["acceptance_rate"], float)[stuck].mean(axis=1)
            acc = f" (mean acceptance {', '.join(f'{v:.2g}' for v in a)})"
        out.append(f"chain(s) {stuck} never moved: every draw equals the chain's first{acc}; the sampler is stuck "
                   "(a step size far too large, a start where the log-density is not finite, or adapt=False with "
                   "unsuitable settings).")
    constant = table.index[constant_rows(table)].tolist() if "sd" in table else []
    if constant and len(constant) == len(table):
        out.append(f"every entry ({len(constant)}) is constant over all chains and draws: nothing was sampled, so "
                   "R-hat and ESS cannot judge the run.")
        return out
    if constant:
        out.append(f"note: {len(constant)} constant entr{'y' if len(constant) == 1 else 'ies'} "
                   f"({', '.join(map(str, constant[:5]))}{', ...' if len(constant) > 5 else ''}): R-hat and ESS are "
                   "undefined there and not judged (expected for fixed entries such as an LKJ factor's first row).")
        table = table.drop(index=constant)
    bad_draws = nonfinite_draws(dt)
    if bad_draws:
        out.append(nonfinite_finding(bad_draws))
    bad_rhat = table[table["r_hat"] > rhat_max]
    if len(bad_rhat):
        worst = bad_rhat["r_hat"].idxmax()
        out.append(f"R-hat > {rhat_max} for {len(bad_rhat)} variable(s) (worst {worst}: "
                   f"{bad_rhat['r_hat'].max():.3f}): chains disagree; run longer or reparametrise.")
    nan_rhat = table[~np.isfinite(table["r_hat"])] if "r_hat" in table else table.iloc[:0]
    if len(nan_rhat):
        # the reason, not a guess: a NaN/inf draw makes the mean non-finite too; finite means leave the run's shape
        finite = np.isfinite(nan_rhat["mean"].to_numpy(float)) if "mean" in nan_rhat else np.zeros(len(nan_rhat), bool)
        e = nan_rhat.index[0]
        if not finite.all():
            if not bad_draws:  # finite draws whose mean overflows
                out.append(f"R-hat is NaN for {int((~finite).sum())} variable(s) (e.g. {nan_rhat.index[~finite][0]}): "
                           "their means are not finite, so mixing cannot be judged.")
        elif n_chains < 2:
            out.append(f"R-hat is not defined with {n_chains} chain (e.g. {e}): whether chains started apart agree "
                       "cannot be judged; run num_chains >= 2 (4 is usual).")
        else:
            out.append(f"R-hat is NaN for {len(nan_rhat)} variable(s) (e.g. {e}) although their draws are finite: "
                       f"too few draws per chain ({int(dt['posterior'].sizes.get('draw', 0))}) to compute it; run "
                       "longer.")
    for col, label in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        low = table[table[col] < ess_per_chain_min * n_chains]
        if len(low):
            worst = low[col].idxmin()
            out.append(f"{label} ESS < {ess_per_chain_min} per chain for {len(low)} variable(s) (worst {worst}: "
                       f"{low[col].min():.0f} over {n_chains} chains): estimates of "
                       f"{'the centre' if label == 'bulk' else 'quantiles/intervals'} are unreliable.")
    div = divergences(dt)
    nan_div = nonfinite_divergences(dt)
    if "sample_stats" in dt.children and "nonfinite" in dt["sample_stats"]:
        # samplers that revert a non-finite step (MCLMC, sECD) flag it as a divergence too: it is reported once,
        # as a reverted step, below
        div, nan_div = div - nan_div, np.zeros_like(nan_div)
    out += divergence_findings(div, nan_div)
    e = ebfmi(dt)
    low = np.where(e < ebfmi_min)[0]
    if low.size:
        out.append(f"E-BFMI < {ebfmi_min} in chain(s) {low.tolist()} ({np.round(e[low], 2).tolist()}): momentum "
                   "resampling explores the energy poorly; the tails may be under-explored.")
    out += _energy_error_findings(dt)
    out += count_findings(dt.attrs)
    return out


def divergence_findings(div, nan_div) -> list[str]:
    """The finding for divergent transitions per chain (`div`), of which `nan_div` met a NaN/inf (none: [])."""
    div, nan_div = np.asarray(div, dtype=np.int64), np.asarray(nan_div, dtype=np.int64)
    if not div.sum():
        return []
    k = int(nan_div.sum())
    curv = int(div.sum()) - k
    parts = []
    if k:
        parts.append(f"{k} met a NaN/inf log-density or gradient (not curvature: the model is NaN/inf where the "
                     "sampler went; check it, e.g. a log or sqrt of a negative number)")
    if curv:
        parts.append(f"{curv} met curvature the sampler cannot integrate (raise target_accept or reparametrise, "
                     "e.g. non-centred)")
    return [f"{int(div.sum())} divergent transition(s) (per chain {div.tolist()}): " + "; ".join(parts) + "."]


def count_findings(attrs) -> list[str]:
    """Findings from a run's counts alone (steps reverted at a NaN/inf log-density, non-finite draws): what can be
    judged without the draws (a streamed `moments_only` run keeps none)."""
    out = []
    if int(attrs.get("n_reverted", 0)):
        out.append(f"{int(attrs['n_reverted'])} step(s) met a NaN/inf log-density or gradient and were reverted "
                   "(the chain stayed where it was): such steps bias the draws; check the model for NaN/inf regions, "
                   "or lower the step size / energy-error target.")
    if int(attrs.get("n_reverted_warmup", 0)):
        out.append(f"note: {int(attrs['n_reverted_warmup'])} warmup step(s) met a NaN/inf log-density and were "
                   "reverted (warmup draws are discarded; the model has NaN/inf regions the sampler can reach).")
    if int(attrs.get("n_nonfinite", 0)):
        first = np.atleast_1d(np.asarray(attrs.get("first_nonfinite_draw", []), dtype=int))
        where = (f" (chains {np.where(first >= 0)[0].tolist()}, first at draws {first[first >= 0].tolist()})"
                 if first.size else "")
        out.append(f"{int(attrs['n_nonfinite'])} draw(s) have a non-finite log-density or position{where}; they "
                   "are kept as they are, not repaired: check the model for regions where it is NaN/inf, or reduce "
                   "the step size.")
    return out


def _energy_error_findings(dt) -> list[str]:
    """Unadjusted microcanonical samplers (MCLMC, sECD) have no accept step: their bias grows with the energy error
    per dimension, which their warmup tunes to `desired_energy_var` (Robnik et al. 2023). A sampling phase whose
    Var[energy change] / d is far above that target ran with too large a step for where it went (a funnel's
    neck, a badly scaled direction) and its draws are biased even when the chains agree."""
    target = dt.attrs.get("desired_energy_var")
    if target is None or "sample_stats" not in dt.children or "energy_change" not in dt["sample_stats"]:
        return []
    ec = np.asarray(dt["sample_stats"]["energy_change"], dtype=float)
    dim = sum(int(np.prod(v.shape[2:])) for v in dt["posterior"].data_vars.values())
    with np.errstate(invalid="ignore"):
        per_dim = np.nanvar(ec, axis=1) / max(dim, 1)
    high = np.where(per_dim > ENERGY_VAR_FACTOR * float(target))[0]
    if not high.size:
        return []
    return [f"energy error variance per dimension {np.round(per_dim[high], 5).tolist()} in chain(s) "
            f"{high.tolist()} is over {ENERGY_VAR_FACTOR:g}x the desired_energy_var {float(target):g} the warmup "
            "tuned for: an unadjusted sampler's draws are biased there; use an adjusted sampler (mams, nuts), "
            "a smaller desired_energy_var, or reparametrise."]


def nonfinite_divergences(data) -> np.ndarray:
    """Per chain, divergent transitions that met a NaN/inf log-density or gradient rather than curvature.

    From `sample_stats.diverging_nonfinite` (HMC/NUTS: a trajectory end with a non-finite log-density) or a
    divergence flagged together with `nonfinite` (MCLMC, sECD: a reverted non-finite step); zeros otherwise.
    """
    dt = _as_datatree(data)
    ss = dt["sample_stats"] if "sample_stats" in dt.children else {}
    if "diverging" not in ss:
        return np.zeros(_num_chains(dt), int)
    if "n_divergent_nonfinite" in ss:  # thinned: counted over every step
        return np.asarray(ss["n_divergent_nonfinite"]).sum(axis=1)
    div = np.asarray(ss["diverging"]).astype(bool)
    flag = np.zeros_like(div)
    for k in NONFINITE_FLAGS:
        if k in ss:
            flag |= np.asarray(ss[k]).astype(bool)
    return (div & flag).sum(axis=1)
