"""Lanczos tridiagonalization with full reorthogonalization (the algorithm behind
`flowax.kernels.top_eigenpairs`, `spectral_density` and `track_sharpness`; see
`flowax.kernels.curvature` for the method and references)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def _orth(w, basis, mask):
    """``w`` minus its projection on the rows of ``basis`` selected by ``mask``, twice."""
    for _ in range(2):
        w = w - basis.T @ (mask * (basis @ w))
    return w


def lanczos(mv, q0, m: int, key) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``m`` steps of Lanczos with full reorthogonalization from the unit vector ``q0``.

    Returns ``(alpha [m], beta [m - 1], Q [m, n])``: ``T = tridiag(beta, alpha, beta)`` and the
    orthonormal basis ``Q``. On breakdown (``beta_j`` at rounding level) the next basis vector is
    a random one orthogonal to the basis and ``beta_j = 0``.
    """
    n = q0.shape[0]
    dtype = q0.dtype
    # a coupling at rounding level after two reorthogonalizations: the Krylov space is exhausted
    tiny = 10 * np.sqrt(n) * jnp.finfo(dtype).eps

    def body(carry, j):
        basis, prev_beta, scale = carry
        q = basis[j]
        w = mv(q)
        alpha = q @ w
        mask = (jnp.arange(m) <= j).astype(dtype)
        w = _orth(w, basis, mask)
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(alpha) + prev_beta + beta)
        broken = beta <= tiny * scale

        def restart(_):
            fresh = _orth(jax.random.normal(jax.random.fold_in(key, j), (n,), dtype), basis, mask)
            return fresh / jnp.linalg.norm(fresh)

        nxt = jax.lax.cond(broken, restart, lambda _: w / beta, None)
        beta = jnp.where(broken, 0.0, beta)
        basis = jnp.where(j + 1 < m, basis.at[jnp.minimum(j + 1, m - 1)].set(nxt), basis)
        return (basis, beta, scale), (alpha, beta)

    basis0 = jnp.zeros((m, n), dtype).at[0].set(q0)
    (basis, _, _), (alpha, beta) = jax.lax.scan(
        body, (basis0, jnp.zeros((), dtype), jnp.zeros((), dtype)), jnp.arange(m)
    )
    return alpha, beta[:-1], basis


def tridiag(alpha, beta):
    return jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)


def start_vector(key, v0, n, dtype):
    if v0 is None:
        q = jax.random.normal(key, (n,), dtype)
    else:
        q = ravel_pytree(v0)[0].astype(dtype)
    return q / jnp.linalg.norm(q)
