"""JAX's persistent compilation cache, on by default, so the second run of a script skips compilation.

On `import samplax` the cache directory is set to `$SAMPLAX_COMPILATION_CACHE` if that is a path, else
`$XDG_CACHE_HOME/samplax/jax/<machine>` (`~/.cache/samplax/jax/<machine>`), unless the user already set
`jax_compilation_cache_dir` (theirs is kept) or turned it off with `SAMPLAX_COMPILATION_CACHE=0` (also
`off`, `false`, `no`). `samplax.compilation_cache(None)` turns it off in a running process,
`samplax.compilation_cache(path)` points it elsewhere.

JAX keys each entry on the compiled program itself (its HLO, with any constants such as the data, the
compile options, the backend and the jaxlib version), so an entry is only reused for the same computation;
the cache holds programs, never draws. Programs that compile in under `MIN_COMPILE_SECONDS` are not written.

JAX's key does not include the CPU: every x86 CPU is device kind "cpu", yet XLA compiles for the instruction set
of the CPU it runs on, and a program compiled where AVX-512 exists crashes the process (no Python error) where it
does not. A home directory shared between machines (a cluster's NFS home, a container image that carries
`~/.cache`) would serve such programs, so the default directory has one subdirectory per machine kind,
`<machine>` = architecture + a digest of the CPU model and its feature flags (`machine_tag()`). A path the user
gives is used as given: share it only between machines of one kind.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import platform

import jax

ENV = "SAMPLAX_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")
MIN_COMPILE_SECONDS = 0.3


def _cpu_description() -> str:
    """The CPU model and feature flags XLA compiles for (Linux: /proc/cpuinfo's first processor)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            fields = {}
            for line in f:
                if not line.strip():
                    break  # the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        keys = ("vendor_id", "model name", "flags", "CPU implementer", "CPU part", "Features")
        described = "|".join(f"{k}={fields[k]}" for k in keys if k in fields)
        if described:
            return described
    except OSError:
        pass
    return f"{platform.processor()}|{platform.platform()}"


def machine_tag() -> str:
    """`<architecture>-<12 hex digits>`: equal on machines whose CPUs run each other's compiled programs."""
    digest = hashlib.sha256(_cpu_description().encode()).hexdigest()[:12]
    return f"{platform.machine() or 'unknown'}-{digest}"


def default_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "samplax" / "jax" / machine_tag()


def current_dir() -> str | None:
    """The directory JAX's persistent cache uses now, None when it is off."""
    if not jax.config.jax_enable_compilation_cache:
        return None
    return jax.config.jax_compilation_cache_dir


def compilation_cache(path: str | os.PathLike | None = "default") -> str | None:
    """Turn the persistent compilation cache on (at `path`, or the default directory) or off (`None`);
    returns the directory in use. Takes effect for programs compiled from now on."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        cc.reset_cache()
        return None
    directory = default_dir() if path == "default" else pathlib.Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"compilation cache directory {str(directory)!r} cannot be created ({e}); pass another "
                         f"path, or None (or set {ENV}=0) to turn the cache off") from None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    cc.reset_cache()  # JAX reads the directory once, at its first compile: make it read it again
    return str(directory)


def configure_from_env() -> str | None:
    """The import-time default: on unless turned off or already configured by the user."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    if jax.config.jax_compilation_cache_dir:  # the user's own setting wins
        return current_dir()
    try:
        return compilation_cache(value or "default")
    except ValueError as e:  # an unwritable home must not break `import samplax`
        import warnings

        warnings.warn(f"samplax: persistent compilation cache off: {e}", RuntimeWarning, stacklevel=2)
        jax.config.update("jax_enable_compilation_cache", False)
        return None
