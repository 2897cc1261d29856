"""Prior / likelihood split of a Target, for tempering (SMC moves from the prior to the posterior).

`tempering_parts(target, reference=None)` returns `(log_prior, log_likelihood, sample_prior)` on the
unconstrained flat vector, with log_prior + log_likelihood = target.logdensity:

- from the Target's own `log_prior`, `log_likelihood`, `sample_prior` fields when set;
- for numpyro targets, derived with numpyro handlers: the log prior is the latent sites' log_prob plus
  the Jacobian of the unconstraining transforms, the log likelihood is the observed sites' log_prob
  (and `numpyro.factor` terms, which prior draws cannot honour); prior draws come from
  `numpyro.infer.Predictive` and are unconstrained draw by draw (supports may depend on other sites);
- with a Gaussian reference as the "prior" and logdensity - log reference as the "likelihood" (overrides the
  model's prior when given):
  `reference=(mean, scale)`: N(mean, scale^2 I), mean and scale scalars or (dim,) vectors;
  `reference=(mean, cov)` with cov a (dim, dim) matrix: N(mean, cov);
  `reference="auto"`: a widened Laplace fit at the posterior mode (`samplax.reference_fit`: mode from several
  starts, inverse Hessian, one importance-sampling refinement, covariance x 4).
- `reference=None` (default) uses the model's prior; when there is none to draw from -- a numpyro model with an
  improper prior (ImproperUniform sites, Stan's flat priors) or a plain log-density -- it uses "auto" and says
  so with a `UserWarning` naming the improper sites (once per Target and setting). log Z is then the integral of
  exp(logdensity), i.e. the evidence relative to the improper prior's density (1 on its support).

Every Gaussian reference (given or automatic) is checked against the posterior (`reference_fit.
coverage_findings`: a Laplace fit and importance sampling from 512 reference draws); a reference narrower than
the posterior along some coordinate, or centred far from it, gives a `RuntimeWarning` naming the coordinates
and what to do, at every `tempering_parts` call (`warn=False` leaves reporting to the caller).
`reference_report(target, reference)` returns those notes and findings as strings (cached, no refit, no
warning) for a driver to record; `reference_check(target, parts)` runs the coverage check on any parts,
e.g. a model's own prior.

Everything here runs eagerly on concrete numbers (`jax.ensure_compile_time_eval`), so it can be called while
a sampler is traced; results are cached per Target object (weakly) and reference setting.
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from samplax import reference_fit

CHECK_POINTS = 3


def gaussian_reference(target, reference) -> reference_fit.Gaussian:
    """(mean, scale) or (mean, cov) as a Gaussian; numpy, since this runs while the sampler is traced."""
    try:
        mean, spread = reference
    except (TypeError, ValueError):
        raise ValueError(f"reference must be None, 'auto', a pair (mean, scale) or (mean, cov), got {reference!r}") \
            from None
    dim = target.dim
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (dim,)) if np.ndim(mean) == 0 else np.asarray(mean, float)
    spread = np.asarray(spread, dtype=float)
    if mean.shape != (dim,):
        raise ValueError(f"reference mean must be a scalar or of shape ({dim},) for target {target.name!r}, "
                         f"got {mean.shape}")
    if not np.all(np.isfinite(mean)):
        raise ValueError(f"reference mean must be finite, got {mean}")
    if spread.ndim == 2:
        if spread.shape != (dim, dim):
            raise ValueError(f"reference covariance must be of shape ({dim}, {dim}) for target {target.name!r}, "
                             f"got {spread.shape}")
        if not (np.all(np.isfinite(spread)) and np.allclose(spread, spread.T, rtol=1e-8, atol=0)):
            raise ValueError("reference covariance must be finite and symmetric")
        try:
            chol = np.linalg.cholesky(0.5 * (spread + spread.T))
        except np.linalg.LinAlgError:
            raise ValueError("reference covariance must be positive definite (its Cholesky factorisation "
                             "failed)") from None
        return reference_fit.Gaussian(mean, chol)
    scale = np.broadcast_to(spread, (dim,)) if spread.ndim == 0 else spread
    if scale.shape != (dim,):
        raise ValueError(f"reference scale must be a scalar or of shape ({dim},) (or a ({dim}, {dim}) covariance) "
                         f"for target {target.name!r}, got {scale.shape}")
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"reference scale must be positive and finite, got {scale}")
    return reference_fit.Gaussian(mean, np.diag(scale))


def _gaussian_parts(target, g: reference_fit.Gaussian):
    log_prior, sample_prior = reference_fit.gaussian_functions(g)

    def log_likelihood(x):
        return target.logdensity(x) - log_prior(x)

    return log_prior, log_likelihood, sample_prior


def _base_dist(fn):
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def improper_sites(model, args, kwargs, params) -> list[str]:
    """Latent sites with an improper prior (ImproperUniform), as "name (Distribution)"."""
    from numpyro import handlers
    from numpyro.distributions import ImproperUniform
    from numpyro.infer.util import _unconstrain_params

    # substitute values rather than sample: an improper site cannot be sampled
    tr = handlers.trace(_unconstrain_params(model, params)).get_trace(*args, **kwargs)
    return [f"{site['name']!r} ({type(_base_dist(site['fn'])).__name__})" for site in tr.values()
            if site["type"] == "sample" and not site["is_observed"]
            and isinstance(_base_dist(site["fn"]), ImproperUniform)]


def _numpyro_parts(target):
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import Predictive
    from numpyro.infer.util import _unconstrain_params, compute_log_probs, unconstrain_fn

    model, args, kwargs, unravel = (target.info[k] for k in ("model", "model_args", "model_kwargs", "unravel"))
    latent = tuple(unravel(jnp.zeros(target.dim)).keys())
    jac_sites = {f"_{k}_log_det" for k in latent}

    def split(x):
        logps, tr = compute_log_probs(_unconstrain_params(model, unravel(x)), args, kwargs, {})
        lp = jnp.zeros(())
        ll = jnp.zeros(())
        for name, v in logps.items():
            # Jacobian factors of the unconstraining transforms are observed "factor" sites; they belong to the prior
            if tr[name]["is_observed"] and name not in jac_sites:
                ll = ll + v
            else:
                lp = lp + v
        return lp, ll

    def log_prior(x):
        return split(x)[0]

    def log_likelihood(x):
        return split(x)[1]

    def sample_prior(key, n):
        draws = Predictive(model, num_samples=n, return_sites=list(latent))(key, *args, **kwargs)
        # each draw is unconstrained with the transforms of its own trace: supports may depend on other sites
        flat = jax.jit(jax.vmap(lambda d: ravel_pytree(unconstrain_fn(model, args, kwargs, d))[0]))(
            {k: draws[k] for k in latent})
        return flat

    return log_prior, log_likelihood, sample_prior


def _check_split(target, log_prior, log_likelihood, sample_prior, what, advice):
    """log_prior + log_likelihood must equal logdensity at prior draws; raise naming the target otherwise.
    `advice`: what the user can pass instead (not the setting that is failing)."""
    x = sample_prior(jax.random.PRNGKey(20240601), CHECK_POINTS)
    if x.shape != (CHECK_POINTS, target.dim):
        raise ValueError(f"sample_prior of target {target.name!r} must return shape (n, {target.dim}), "
                         f"got {x.shape} for n={CHECK_POINTS}")
    # jit, not a bare vmap: this runs eagerly inside a traced sampler (ensure_compile_time_eval), where under jax
    # 0.12.1 a bare vmap of a log-density with a vmap inside returned a tracer that np.asarray refused
    lp, ll, ld = (np.asarray(jax.jit(jax.vmap(f))(x)) for f in (log_prior, log_likelihood, target.logdensity))
    reference_fit.count(n_logdensity=2 * CHECK_POINTS)  # the log-likelihood and the log-density
    ok = np.isfinite(ld)
    if not np.any(ok):
        raise ValueError(f"target {target.name!r}: log-density is not finite at any of {CHECK_POINTS} prior draws "
                         f"({what}); check the model, or {advice}")
    err = np.abs(lp + ll - ld)[ok]
    tol = 1e-6 * (1 + np.abs(ld[ok]))
    if np.any(err > tol):
        raise ValueError(f"target {target.name!r}: log_prior + log_likelihood differs from logdensity by up to "
                         f"{err.max():.3g} at prior draws ({what}); the prior/likelihood split is wrong")


@dataclasses.dataclass
class _Entry:
    parts: tuple
    notes: tuple[str, ...]      # informational: which reference and why
    findings: tuple[str, ...]   # coverage problems of a Gaussian reference
    gaussian: bool              # whether the "prior" is a Gaussian reference (then `findings` were computed)
    prior_findings: tuple[str, ...] | None = None  # reference_check on a model's prior, when asked


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _reference_key(reference):
    if reference is None or (isinstance(reference, str) and reference == "auto"):
        return reference
    if isinstance(reference, str):
        raise ValueError(f"reference must be None, 'auto', (mean, scale) or (mean, cov), got {reference!r}")
    try:
        mean, spread = reference
    except (TypeError, ValueError):
        raise ValueError(f"reference must be None, 'auto', a pair (mean, scale) or (mean, cov), got {reference!r}") \
            from None
    a, b = np.asarray(mean, float), np.asarray(spread, float)
    return ("gaussian", a.shape, a.tobytes(), b.shape, b.tobytes())


def tempering_parts(target, reference=None, check: bool = True, warn: bool = True, warn_coverage: bool = True):
    """(log_prior, log_likelihood, sample_prior) of `target` in its unconstrained space; see the module docstring.

    warn=True: a reference chosen automatically gives a UserWarning (first time per Target and setting), a
    reference that does not cover the posterior a RuntimeWarning (every call; not with warn_coverage=False, for
    callers whose run reports it in its trust check). `reference_report` returns both.
    """
    fresh = target not in _CACHE or (_reference_key(reference), check) not in _CACHE[target]
    entry = _entry(target, reference, check)
    if warn:
        if fresh and entry.notes:
            warnings.warn(" ".join(entry.notes), UserWarning, stacklevel=2)
        if entry.findings and warn_coverage:
            warnings.warn(f"tempering reference for target {target.name!r} does not cover the posterior: "
                          + " | ".join(entry.findings), RuntimeWarning, stacklevel=2)
    return entry.parts


def reference_report(target, reference=None, check: bool = True) -> list[str]:
    """The notes (which reference, why) and coverage findings of `tempering_parts(target, reference)`, as
    strings; cached with it (no refit, no warning). Coverage findings are the strings that start with
    "coverage:"."""
    entry = _entry(target, reference, check)
    return list(entry.notes) + [f"coverage: {f}" for f in entry.findings]


def reference_check(target, parts) -> list[str]:
    """Coverage findings (strings, [] when none) for any tempering parts: the same check `tempering_parts` runs
    on Gaussian references, here with the reference's moments estimated from its draws (e.g. a model's prior)."""
    entry = next((e for e in _CACHE.get(target, {}).values() if e.parts is parts), None)
    if entry is not None and entry.gaussian:
        return list(entry.findings)
    if entry is not None and entry.prior_findings is not None:
        return list(entry.prior_findings)
    log_prior, _, sample_prior = parts
    findings = tuple(reference_fit.coverage_findings(target, log_prior, sample_prior, what="prior"))
    if entry is not None:
        entry.prior_findings = findings
    return list(findings)


def _entry(target, reference, check) -> _Entry:
    key = (_reference_key(reference), check)
    per_target = _CACHE.setdefault(target, {})
    if key not in per_target:
        # samplers call this while being traced: build constants and run the checks eagerly, not as staged tracers
        with jax.ensure_compile_time_eval():
            per_target[key] = _build(target, reference, check)
    return per_target[key]


def _auto(target, why: str | None):
    g, fit_notes = reference_fit.auto_reference(target)
    fit = reference_fit.laplace(target)  # cached: the fit auto_reference used
    what = (f"a Gaussian in the unconstrained space from the Laplace fit at the mode, covariance x "
            f"{reference_fit.INFLATE:g} (mean {reference_fit._fmt(g.mean)}, sd {reference_fit._fmt(g.sd)}); "
            f"{fit.n_modes} mode(s) found from {reference_fit.NUM_STARTS} optimiser starts. A mode the starts did "
            "not reach lies outside the reference, and tempering from it misses that mode without a trace (log Z "
            "low, its mass absent; the coverage check cannot see it either): if the target may be multimodal, "
            "pass reference=(mean, scale) wide enough to cover every mode")
    if why is None:
        note = f"reference='auto' for target {target.name!r}: {what}."
    else:
        note = (f"{why}, so tempering starts from reference='auto': {what}. log Z is the integral of exp(logdensity) "
                "(the evidence relative to a flat prior density of 1). Pass reference=(mean, scale) to choose another.")
    return g, (note,) + tuple(f"automatic reference for {target.name!r}: {n}" for n in fit_notes)


def _build(target, reference, check) -> _Entry:
    notes: tuple[str, ...] = ()
    gauss = None
    if isinstance(reference, str):
        _reference_key(reference)  # validates
        gauss, notes = _auto(target, None)
    elif reference is not None:
        gauss = gaussian_reference(target, reference)
    else:
        fields = {"log_prior": target.log_prior, "log_likelihood": target.log_likelihood,
                  "sample_prior": target.sample_prior}
        given = [k for k, v in fields.items() if v is not None]
        if len(given) == 3:
            parts, what = (fields["log_prior"], fields["log_likelihood"], fields["sample_prior"]), "Target fields"
        elif given:
            missing = [k for k in fields if k not in given]
            raise ValueError(f"target {target.name!r} sets {given} but not {missing}; tempering needs all of "
                             "log_prior, log_likelihood and sample_prior, or pass reference='auto' or (mean, scale)")
        elif all(k in target.info for k in ("model", "model_args", "model_kwargs", "unravel")):
            info = target.info
            bad = improper_sites(info["model"], info["model_args"], info["model_kwargs"],
                                 info["unravel"](jnp.zeros(target.dim)))
            if bad:
                gauss, notes = _auto(target, f"target {target.name!r} has an improper prior at site(s) "
                                             f"{', '.join(bad)}, which tempering cannot draw from")
            else:
                parts, what = _numpyro_parts(target), "numpyro prior/likelihood"
        else:
            gauss, notes = _auto(target, f"target {target.name!r} is a plain log-density with no prior to draw from")
    findings: tuple[str, ...] = ()
    if gauss is not None:
        parts, what = _gaussian_parts(target, gauss), "Gaussian reference"
        findings = tuple(reference_fit.coverage_findings(target, parts[0], parts[2], gauss.mean, gauss.sd,
                                                         gauss.chol))
    if check:
        # advise a setting other than the one that failed
        if gauss is None:
            advice = "pass reference='auto' or (mean, scale)"
        elif isinstance(reference, str):
            advice = ("pass reference=(mean, scale), or reference=None to start from the model's prior when it has "
                      "a proper one")
        else:
            advice = "pass another reference=(mean, scale), or reference='auto'"
        try:
            _check_split(target, *parts, what, advice)
        except ValueError as err:
            if not findings:
                raise
            raise ValueError(f"{err}. The reference's coverage check found: " + " | ".join(findings)) from None
    return _Entry(tuple(parts), notes, findings, gauss is not None)
