"""`samplax.sample`: the one front door; chain samplers go to `run.sample`, population samplers to `particles`.

It also checks the arguments before anything runs: sampler names are case-insensitive, a misspelled argument
gets a did-you-mean that says whether the close name is a `sample()` argument or a sampler setting, and the
PyMC spellings `draws=` / `tune=` are mapped to ours.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from typing import Any

import numpy as np

# Other libraries' names for our arguments (PyMC's pm.sample(draws=, tune=, chains=, random_seed=)).
ALIASES = {"draws": "num_samples", "tune": "num_warmup", "chains": "num_chains", "random_seed": "seed",
           "num_draws": "num_samples", "num_tune": "num_warmup", "n_chains": "num_chains", "n_samples": "num_samples"}


def _chain_registry():
    from samplax import samplers

    return samplers.base._REGISTRY


def _registries():
    """(chain samplers, population samplers). Loading the population families imports the diffusion stack
    (diffrax, equinox: about a second in a fresh process), so the chain-only paths use `_chain_registry`."""
    from samplax import particles
    from samplax.particles import families  # noqa: F401  (registers the population families)

    return _chain_registry(), particles.base._REGISTRY


def canonical_name(sampler):
    """The registered spelling of a sampler name given in any case ("NUTS" -> "nuts"); other values unchanged.
    Chain and population names are disjoint (tests/test_sampler_contract.py); chain names are looked up
    first, so naming a chain sampler does not import the population families."""
    if not isinstance(sampler, str):
        return sampler
    chains = _chain_registry()
    if sampler in chains:
        return sampler
    key = sampler.strip().lower()
    lower = {n.lower(): n for n in chains}
    if key in lower:
        return lower[key]
    pops = _registries()[1]
    if sampler in pops:
        return sampler
    return {n.lower(): n for n in pops}.get(key, sampler)


def is_chain_sampler_name(name) -> bool:
    """A registered chain sampler's exact name (without loading the population families)."""
    return isinstance(name, str) and name in _chain_registry()


def factory(name: str):
    """The registered factory (chain or population) of sampler `name`, or None."""
    chains = _chain_registry()
    if name in chains:
        return chains[name]
    return _registries()[1].get(name)


def settings_of(name: str) -> dict[str, inspect.Parameter]:
    """A registered sampler's settings (its factory's named parameters; a catch-all `**kwargs` is not one)."""
    f = factory(name)
    if f is None:
        return {}
    return {p.name: p for p in inspect.signature(f).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _takes_any_setting(name: str) -> bool:
    f = factory(name)
    return f is not None and any(p.kind is p.VAR_KEYWORD for p in inspect.signature(f).parameters.values())


def _sample_arguments(population: bool) -> list[str]:
    from samplax.particles.run import sample_population
    from samplax.run import sample as sample_chains

    fn = sample_population if population else sample_chains
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY]


def expected_type(param: inspect.Parameter) -> tuple[type, ...] | None:
    """The value types a setting accepts, read from a number or true/false default (None: not checked). A string
    default is not checked here: such settings often take a name or something else (smc's schedule="adaptive"
    or a list of temperatures), and the sampler's own check names the choices."""
    d = param.default
    if d is inspect.Parameter.empty or d is None:
        return None
    if isinstance(d, bool):
        return (bool,)
    if isinstance(d, int):
        return (int,)
    if isinstance(d, float):
        return (int, float)
    return None


_TYPE_WORDS = {(bool,): "true or false", (int,): "an integer", (int, float): "a number"}
# per expected type: the Python values and the numpy dtype kinds (of a 0-d array) that are of it
_KINDS = {(bool,): ((bool, np.bool_), "b"), (int,): ((numbers.Integral,), "iu"),
          (int, float): ((numbers.Real,), "iuf")}


def check_setting_types(name: str, settings: dict, how: str = "setting") -> None:
    """Raise TypeError naming the setting and the expected type when a value has the wrong kind (e.g. "high")."""
    params = settings_of(name)
    for key, value in settings.items():
        if key not in params:
            continue
        types = expected_type(params[key])
        if types is None or value is None:
            continue
        kinds, dtype_kinds = _KINDS[types]
        if hasattr(value, "dtype") and getattr(value, "shape", None) == ():  # a 0-d numpy / JAX array is its scalar
            ok = np.dtype(value.dtype).kind in dtype_kinds
        else:
            ok = isinstance(value, kinds) and (types == (bool,) or not isinstance(value, (bool, np.bool_)))
        if not ok:
            default = params[key].default
            raise TypeError(f"{how} {key}={value!r} of sampler {name!r}: {key} expects {_TYPE_WORDS[types]} "
                            f"(default {default!r}), got {type(value).__name__} {value!r}")


def check_arguments(sampler, kwargs: dict, population: bool) -> None:
    """Refuse an argument that is neither a `sample()` argument nor a setting of the named sampler, saying which
    close name was meant (and where it belongs); map PyMC's draws / tune."""
    name = sampler if isinstance(sampler, str) else None
    own = _sample_arguments(population)
    if population:  # the population runner explains these itself ("a chain-sampler setting")
        own = [*own, "num_samples", "num_warmup", "thinning"]
    settings = list(settings_of(name)) if name else []
    open_settings = name is None or _takes_any_setting(name)  # a built sampler or a **kwargs factory decides itself
    for key in kwargs:
        if key in own or key in settings:
            continue
        if key in ALIASES and ALIASES[key] in own:
            raise TypeError(f"sample() has no argument {key!r}: samplax calls these num_samples / num_warmup "
                            f"(and num_chains, seed); use {ALIASES[key]}=...")
        if open_settings and not difflib.get_close_matches(key, own, n=1, cutoff=0.75):
            continue
        close = difflib.get_close_matches(key, [*own, *settings], n=3, cutoff=0.6)
        hint = "; did you mean " + " or ".join(
            f"{c} ({'a sample() argument' if c in own else f'a setting of sampler {name!r}'})" for c in close) + "?"
        hint = hint if close else ""
        where = f"sample() arguments: {', '.join(own)}" + (
            f"; settings of sampler {name!r}: {', '.join(settings) or '(none)'}" if name else "")
        if close and close[0] in own or not name:
            raise TypeError(f"unknown argument {key!r} of sample(){hint} ({where})")
        raise TypeError(f"bad settings for sampler {name!r}: unknown argument {key!r} (neither a sample() argument "
                        f"nor a setting of {name!r}){hint} ({where}; `samplax samplers {name}` describes them)")
    if name:
        check_setting_types(name, {k: v for k, v in kwargs.items() if k in settings and k not in own})


def _check_flags(progress, kwargs) -> None:
    """True / False arguments must be bools: keep_warmup="no" is truthy and would do the opposite of what it says."""
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None (show a bar when stderr is a terminal), got {progress!r}")
    for key in ("keep_warmup", "overwrite", "moments_only"):
        if key in kwargs and not isinstance(kwargs[key], (bool, np.bool_)):
            raise TypeError(f"{key} must be True or False, got {kwargs[key]!r}")


def sample(model, sampler: Any = "nuts", *, num_chains: int = 4, num_warmup: int = 1000, num_samples: int = 1000,
           num_particles: int = 1000, seed: int = 0, thinning: int = 1, chain_method: str | None = None,
           progress: bool | None = None, **kwargs):
    """Sample `model` (a Target, or a score model for diffusion / Feynman-Kac samplers) with `sampler`.

    sampler: a registered name, any case (`samplax samplers` lists them with their settings), a built
      sampler, a blackjax SamplingAlgorithm or an (init, step) pair.
    Chain samplers (`samplax.samplers.available()`) use num_chains, num_warmup, num_samples, thinning and the
      further arguments of `samplax.run.sample` (init_positions, keep_warmup, checkpoint, checkpoint_every,
      resume, out, keep, moments_only, overwrite, chunk_size).
    Population samplers (`samplax.particles.available()`: smc, fkc, diffusion samplers, trained samplers) use
      num_particles and num_chains (independent populations); see `samplax.particles.sample_population`.
    Every other keyword is a setting of the sampler (e.g. target_accept=0.9 for nuts); a misspelled one is
    refused with a did-you-mean. PyMC users: draws= is num_samples, tune= is num_warmup.
    """
    from samplax import particles, samplers
    from samplax.run import sample as sample_chains

    sampler = canonical_name(sampler)
    population = not is_chain_sampler_name(sampler) and particles.is_population(model, sampler)
    if isinstance(sampler, str) and not population and sampler not in samplers.available():
        close = difflib.get_close_matches(sampler.lower(), [*samplers.available(), *particles.available()], n=2)
        raise ValueError(f"unknown sampler {sampler!r}" + (f" (did you mean {' or '.join(close)}?)" if close else "")
                         + f"; chain samplers: {', '.join(samplers.available())}; "
                         f"population samplers: {', '.join(particles.available())}")
    check_arguments(sampler, kwargs, population)
    _check_flags(progress, kwargs)
    common = dict(num_chains=num_chains, seed=seed, progress=progress)
    if population:
        chain_only = {k: v for k, v in (("num_warmup", num_warmup), ("num_samples", num_samples),
                                        ("thinning", thinning)) if v != _DEFAULTS[k]}
        extra = {} if chain_method is None else {"chain_method": chain_method}
        return particles.sample_population(model, sampler, num_particles=num_particles, **common, **extra,
                                           **chain_only, **kwargs)
    if num_particles != _DEFAULTS["num_particles"]:
        raise TypeError(f"num_particles is a population-sampler argument; {getattr(sampler, 'name', sampler)!r} is "
                        "a chain sampler: use num_chains and num_samples")
    return sample_chains(model, sampler, num_warmup=num_warmup, num_samples=num_samples, thinning=thinning,
                         chain_method=chain_method, **common, **kwargs)


_DEFAULTS = {p.name: p.default for p in inspect.signature(sample).parameters.values()
             if p.default is not inspect.Parameter.empty}


def _full_signature() -> inspect.Signature:
    """What help(samplax.sample) shows: every keyword `sample()` takes (the chain runner's, then num_particles),
    then **settings for the sampler."""
    from samplax.run import sample as sample_chains

    own = inspect.signature(sample).parameters
    params = [own["model"], own["sampler"]]
    for p in inspect.signature(sample_chains).parameters.values():
        if p.kind is p.KEYWORD_ONLY:
            params.append(own.get(p.name, p))
            if p.name == "num_samples":
                params.append(own["num_particles"])
    params.append(inspect.Parameter("settings", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


sample.__signature__ = _full_signature()
