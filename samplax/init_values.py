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
    from numpyro.infer.util import unconstrain_fn

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
        if bad:
            raise ValueError(f"init_positions for chain {c}: {', '.join(f'{n}={chain_values[n].tolist()}' for n in bad)} "
                             f"outside the support of site(s) {bad} of model {target.name!r}")
        per_chain.append(np.asarray(ravel_pytree({n: u[n] for n in latent})[0], float))
    return np.stack(per_chain)
