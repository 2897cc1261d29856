"""Checks on a numpyro model's trace before it becomes a Target; each error names the site and the fix."""

from __future__ import annotations

import jax.numpy as jnp

from samplax.init import callable_name, model_arguments


class NameClash(ValueError):
    """A site and a plate of one name (numpyro's trace keeps one entry per name, so the later hid the other)."""


def trace_model(model, args, kwargs, seed=0):
    """One trace of the model with continuous latents filled as numpyro's initialize_model fills them.

    Refuses (NameClash) a sample / deterministic site and a plate of the same name: numpyro's trace keeps only the
    later of the two, so a latent site `N` under a later `plate("N")` vanished ("no latent sample sites").
    """
    from numpyro import handlers
    from numpyro.infer.initialization import init_to_uniform
    from numpyro.primitives import Messenger

    kinds: dict[str, set] = {}

    class _Names(Messenger):
        def process_message(self, msg):
            if msg.get("name") is not None and msg["type"] in ("sample", "deterministic", "plate"):
                kinds.setdefault(msg["name"], set()).add("plate" if msg["type"] == "plate" else "site")

    # init_to_uniform fills continuous latents as numpyro's initialize_model does, so sites that cannot be
    # sampled (ImproperUniform, e.g. Stan's flat or ordered parameters) trace; discrete ones still sample.
    seeded = handlers.substitute(handlers.seed(model, rng_seed=seed), substitute_fn=init_to_uniform)
    trace = handlers.trace(_Names(seeded)).get_trace(*args, **kwargs)
    clash = sorted(n for n, k in kinds.items() if len(k) > 1)
    if clash:
        raise NameClash(f"model {callable_name(model)!r}: {clash} name(s) both a site and a plate; numpyro keeps "
                        "one entry per name, so one of them would vanish. Rename the plate or the site")
    return trace


def _is_base(site, cls) -> bool:
    """Whether the site's distribution, under masked / expanded / independent wrappers, is a `cls`."""
    fn = site["fn"]
    while hasattr(fn, "base_dist") and not isinstance(fn, cls):
        fn = fn.base_dist
    return isinstance(fn, cls)


def is_factor(site) -> bool:
    """A `numpyro.factor` term: an observed site of the `Unit` distribution (a log-density term, nothing to
    simulate; samplax cannot tell a prior penalty from a likelihood written this way)."""
    from numpyro.distributions.distribution import Unit

    return _is_base(site, Unit)


def is_improper(site) -> bool:
    """A site whose distribution cannot be sampled (ImproperUniform: Stan's flat and ordered parameters)."""
    from numpyro.distributions import ImproperUniform

    return _is_base(site, ImproperUniform)


def dist_name(fn) -> str:
    while hasattr(fn, "base_dist") and type(fn).__name__ in ("ExpandedDistribution", "Independent", "MaskedDistribution"):
        fn = fn.base_dist
    return type(fn).__name__


def latent_names(trace) -> list[str]:
    return [n for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]]


def check_subsampling(trace, name: str) -> None:
    """Refuse plates with subsample_size: their log-density is a random minibatch estimate, not a density."""
    for n, s in trace.items():
        if s["type"] != "plate":
            continue
        size, subsample_size = s["args"]
        if subsample_size is not None and subsample_size != size:
            raise ValueError(
                f"model {name!r}: plate {n!r} subsamples (size={size}, subsample_size={subsample_size}), so its "
                "log-density is a random minibatch estimate that samplax's samplers cannot use. Drop "
                "subsample_size for the full-data posterior, or for stochastic-gradient sampling build the "
                "target with minibatch_target(log_prior, log_lik_one, data, batch_size, dim) and sample it "
                "with the 'sgld' sampler."
            )


RESERVED_NAMES = ("chain", "draw")  # the DataTree's sample dims


def name_problem(n: str) -> str | None:
    """Why `n` cannot name a variable or dim of the results (None when it can): the DataTree's sample dims, or a
    "/" (xarray's DataTree refuses it, and sample() failed after sampling, losing the draws)."""
    if n in RESERVED_NAMES:
        return (f"has the name of a sample dimension of the results ({', '.join(RESERVED_NAMES)}); rename it "
                f"(e.g. {n!r} -> {n + '_'!r})")
    if "/" in n:
        return ("contains '/', which the results' DataTree cannot hold (a numpyro scope's default divider); rename "
                "it, e.g. handlers.scope(..., divider='.')")
    return None


def check_names(trace, name: str) -> None:
    """Refuse sites and plates whose name the results cannot carry (`name_problem`): a site "draw" became the draw
    coordinate (and left the posterior), a plate "chain" relabelled another axis as the chain axis -- both without
    an error -- and a site "grp/mu" lost the whole run when the DataTree was built after sampling."""
    for n, s in trace.items():
        problem = name_problem(n) if s["type"] in ("sample", "deterministic", "plate") else None
        if problem:
            raise ValueError(f"model {name!r}: {s['type']} {n!r} {problem}")


def check_sites(model, args, kwargs, trace, allow_latent_leaves: bool) -> None:
    """Latent sites must exist and be continuous, and must not look like observed sites missing their data."""
    from numpyro.distributions import Delta

    name = callable_name(model)
    latent = latent_names(trace)
    if not latent:
        raise ValueError(
            f"model {name!r} has no latent sample sites: nothing to sample. "
            "Did you pass data for every site?"
        )
    for n in latent:
        fn = trace[n]["fn"]
        if getattr(fn, "is_discrete", False) or getattr(getattr(fn, "support", None), "is_discrete", False):
            raise ValueError(
                f"latent site {n!r} is discrete ({dist_name(fn)}); samplax's samplers need continuous "
                "latents. Marginalise it out (sum over its values with logsumexp) or pass its value as data."
            )
        if isinstance(fn, Delta):
            raise ValueError(
                f"latent site {n!r} has a Delta distribution (a point mass, nothing to sample); use "
                "numpyro.deterministic for this value instead."
            )
    if allow_latent_leaves:
        return
    none_args = [k for k, v in model_arguments(model, args, kwargs).items() if v is None]
    if not none_args:
        return
    from numpyro.infer.inspect import get_dependencies

    try:
        deps = get_dependencies(model, args, kwargs)["prior_dependencies"]
    except Exception:  # noqa: BLE001 - the dependency tracer is best effort
        return
    used = {up for down, ups in deps.items() for up in ups if up != down}
    for n in latent:
        parents = [u for u in deps.get(n, {}) if u != n and u in latent]
        if n not in used and parents:
            raise ValueError(
                f"latent site {n!r} depends on {parents} but nothing depends on it, and model argument(s) "
                f"{none_args} are None: it looks like an observed site whose data is missing. Pass the data "
                f"(e.g. {none_args[0]}=...), or Target.from_numpyro(..., allow_latent_leaves=True) to sample it."
            )


def diagnose_nonfinite(model, args, kwargs, unconstrained: dict) -> str:
    """Name the sites whose log-probability is not finite at an unconstrained point."""
    from numpyro import handlers
    from numpyro.infer.util import constrain_fn

    try:
        params = constrain_fn(model, args, kwargs, unconstrained)
        tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(*args, **kwargs)
    except Exception as err:  # noqa: BLE001
        return f"(evaluating the model failed: {err})"
    bad = []
    for n, s in tr.items():
        if s["type"] != "sample":
            continue
        lp = jnp.sum(s["fn"].log_prob(s["value"]))
        if not bool(jnp.isfinite(lp)):
            bad.append(f"{n!r} ({dist_name(s['fn'])}, log_prob={float(lp)})")
    return ", ".join(bad) if bad else "(no single site; the sum or its gradient is not finite)"
