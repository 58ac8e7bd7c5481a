"""Sparse deconvolution on the torus from low-pass Fourier measurements (BLASSO)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from ...models._particles import Particles


def fourier_features(x: jax.Array, cutoff: int) -> jax.Array:
    """Real low-pass Fourier features on the torus [0, 1): ``[m, 2 cutoff + 1]``.

    ``phi(x) = (1, sqrt 2 cos(2 pi k x), sqrt 2 sin(2 pi k x))_{k = 1..cutoff}`` for ``x: [m]``
    or ``[m, 1]`` (orthonormal on [0, 1)).
    """
    cutoff = _checks.check_positive_int("cutoff", cutoff)
    _checks.check_array("x", x, ndim=(1, 2))
    shape = np.shape(x)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ValueError(f"x: expected positions of shape [m] or [m, 1], got {shape}")
    x = jnp.reshape(x, (-1, 1))
    k = jnp.arange(1, cutoff + 1, dtype=x.dtype)[None, :]
    ang = 2 * jnp.pi * k * x
    ones = jnp.ones_like(x)
    return jnp.concatenate([ones, jnp.sqrt(2.0) * jnp.cos(ang), jnp.sqrt(2.0) * jnp.sin(ang)], 1)


def sparse_deconvolution(
    measurements: jax.Array, *, cutoff: int, reg: float
) -> Callable[[Particles], jax.Array]:
    """Sparse deconvolution on the torus from low-pass Fourier measurements (Chizat and Bach
    2018; Chizat 2022): ``F(mu) = (1/2) |Phi mu - y|^2 + reg mu(T)`` for nonnegative ``mu``.

    ``Phi mu = sum_i w_i phi(x_i)`` with the ``2 cutoff + 1`` real features of `fourier_features`
    (positions ``[m, 1]``, read modulo 1); ``y = measurements``. The penalty ``reg`` times the
    total mass is the total-variation (BLASSO) penalty on nonnegative measures. Convex in ``mu``.
    """
    cutoff = _checks.check_positive_int("cutoff", cutoff)
    _checks.check_positive("reg", reg, allow_zero=True)
    if np.shape(measurements) != (2 * cutoff + 1,):
        raise ValueError(
            f"measurements: expected shape [2 cutoff + 1] = [{2 * cutoff + 1}], got "
            f"{np.shape(measurements)}"
        )
    _checks.check_finite_tree("measurements", measurements)

    def objective(p: Particles) -> jax.Array:
        pred = fourier_features(p.positions, cutoff).T @ p.weights
        return 0.5 * jnp.sum((pred - measurements) ** 2) + reg * jnp.sum(p.weights)

    return objective
