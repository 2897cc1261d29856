"""init_positions given as a dict of a numpyro model's latent sites, in their constrained (model) values, as numpyro's
`init_to_value(values=...)` takes them: turned into the target's flat unconstrained positions, one row per chain."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def is_site_dict(init_positions) -> bool:
    return isinstance(init_positions, Mapping)


def positions_from_sites(target, values: Mapping, num_chains: int) -> np.ndarray:
    """(num_chains, dim) unconstrained positions for `values` {site: value}; each value has the site's shape
    (shared by every chain) or (num_chains, *shape) (one per chain). Every latent site must be given; a value
    outside its site's support is refused, naming the site."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    info = target.info or {}
    if "model" not in info or "unravel" not in info:
        raise TypeError(f"init_positions as a dict of sites needs a numpyro target (Target.from_numpyro); target "
                        f"{target.name!r} takes an array of shape ({num_chains}, {target.dim}) or ({target.dim},) "
                        "in its unconstrained coordinates")
    from numpyro.infer.util import constrain_fn, unconstrain_fn

    latent = list(info["unravel"](jnp.zeros(target.dim)))
    unknown = sorted(set(values) - set(latent))
    missing = [n for n in latent if n not in values]
    if unknown or missing:
        raise ValueError(f"init_positions for model {target.name!r}: give every latent site and only those "
                         f"({', '.join(latent)}); " + "; ".join(
                             s for s in (f"unknown: {unknown}" if unknown else "",
                                         f"missing: {missing}" if missing else "") if s))
    per_chain = []
    for c in range(num_chains):
        chain_values = {}
        for n in latent:
            v = np.asarray(values[n], dtype=float)
            shape = tuple(target.var_shapes[n])
            if v.shape == shape:
                chain_values[n] = v
            elif v.shape == (num_chains, *shape):
                chain_values[n] = v[c]
            else:
                raise ValueError(f"init_positions[{n!r}] must have the site's shape {shape} (every chain) or "
                                 f"{(num_chains, *shape)} (one per chain), got {v.shape}")
        try:
            with jax.ensure_compile_time_eval():
                u = unconstrain_fn(info["model"], info["model_args"], info["model_kwargs"], chain_values)
        except Exception as err:  # noqa: BLE001 - numpyro's validation (e.g. a negative scale): named here
            raise ValueError(f"init_positions for chain {c}: model {target.name!r} failed at these values ({err}); "
                             "check each value against its site's support") from err
        bad = [n for n in latent if not np.all(np.isfinite(np.asarray(u[n])))]
        if not bad:  # a finite unconstrained value can still be another point: stick-breaking ignores a simplex's
            # last entry and Cholesky transforms the upper triangle, so [0.2, 0.2, 0.2] started at [0.2, 0.2, 0.6]
            with jax.ensure_compile_time_eval():
                back = constrain_fn(info["model"], info["model_args"], info["model_kwargs"],
                                    {n: u[n] for n in latent})
            tol = max(1e-6, 1e4 * float(np.finfo(np.asarray(u[latent[0]]).dtype).eps))  # float32: 1.2e-3
            bad = [n for n in latent if not np.allclose(np.asarray(back[n], float), chain_values[n], rtol=tol,
                                                        atol=tol)]
        if bad:
            raise ValueError(f"init_positions for chain {c}: {', '.join(f'{n}={chain_values[n].tolist()}' for n in bad)} "
                             f"outside the support of site(s) {bad} of model {target.name!r} "
                             f"({', '.join(_support(info, n) for n in bad)})")
        per_chain.append(np.asarray(ravel_pytree({n: u[n] for n in latent})[0], float))
    return np.stack(per_chain)


def _support(info, name: str) -> str:
    """A site's distribution and support, e.g. "p: Dirichlet on simplex", for the refusal."""
    from samplax._numpyro_checks import dist_name, trace_model

    site = trace_model(info["model"], info["model_args"], info["model_kwargs"])[name]
    support = getattr(site["fn"], "support", None)
    return f"{name}: {dist_name(site['fn'])} on {type(support).__name__.lstrip('_').replace('Constraint', '') or '?'}"
