"""Linear algebra of an inverse mass matrix C (diagonal `(d,)` or dense `(d, d)`): the only place C's shape matters."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

MASS_MATRICES = ("identity", "diagonal", "dense")


class Precond(NamedTuple):
    apply: Callable  # v -> C v
    sqrt_noise: Callable  # (key, x) -> C^{1/2} xi, xi ~ N(0, I)
    momentum: Callable  # (key, x) -> p ~ N(0, C^{-1})
    quad_inv: Callable  # v -> v^T C^{-1} v


def precond(inverse_mass_matrix) -> Precond:
    c = jnp.asarray(inverse_mass_matrix)
    normal = lambda key, x: jax.random.normal(key, x.shape, x.dtype)  # noqa: E731
    if c.ndim == 1:
        return Precond(lambda v: c * v, lambda k, x: jnp.sqrt(c) * normal(k, x),
                       lambda k, x: normal(k, x) / jnp.sqrt(c), lambda v: jnp.sum(v * v / c))
    chol = jnp.linalg.cholesky(c)
    solve = lambda v, trans: jax.scipy.linalg.solve_triangular(chol, v, lower=True, trans=trans)  # noqa: E731
    return Precond(lambda v: c @ v, lambda k, x: chol @ normal(k, x), lambda k, x: solve(normal(k, x), 1),
                   lambda v: jnp.sum(solve(v, 0) ** 2))


def check_imm(imm, dim, what="inverse_mass_matrix"):
    imm = jnp.asarray(imm, float)
    if imm.shape not in ((dim,), (dim, dim)):
        raise ValueError(f"{what} must have shape ({dim},) (diagonal) or ({dim}, {dim}) (dense), got {imm.shape}")
    return imm


def initial_imm(target, mass_matrix, inverse_mass_matrix):
    """The given C (checked against `mass_matrix`), else the identity in the shape `mass_matrix` asks for."""
    if inverse_mass_matrix is not None:
        imm = check_imm(inverse_mass_matrix, target.dim)
        if mass_matrix == "diagonal" and imm.ndim != 1 or mass_matrix == "dense" and imm.ndim != 2:
            raise ValueError(f"mass_matrix={mass_matrix!r} needs inverse_mass_matrix of matching shape, got "
                             f"{imm.shape}")
        return imm
    return jnp.eye(target.dim) if mass_matrix == "dense" else jnp.ones(target.dim)
