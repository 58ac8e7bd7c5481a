"""Measures as particles: ``Particles(weights, positions)`` (public home:
`flowax.dynamics.measures.Particles`; defined here, at the bottom of the import graph, so that
`flowax.models` can convert network parameters to measures)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks


class Particles(NamedTuple):
    """A measure ``mu = sum_i w_i delta_{x_i}``.

    Attributes:
      weights: ``[m]`` nonnegative masses ``w_i``.
      positions: ``[m, ...]`` positions ``x_i`` (any trailing shape; the particle axis is the
        only coupled axis, batch other axes with ``jax.vmap``).
    """

    weights: jax.Array
    positions: jax.Array

    @property
    def mass(self) -> jax.Array:
        """Total mass ``sum_i w_i``."""
        return jnp.sum(self.weights)


def check_particles(particles: Particles, name: str = "particles") -> None:
    """Raises ValueError for a malformed measure (checks values only when they are concrete)."""
    if not isinstance(particles, Particles):
        got = type(particles).__name__
        raise ValueError(f"{name}: expected flowax.dynamics.measures.Particles, got {got}")
    w_shape, x_shape = np.shape(particles.weights), np.shape(particles.positions)
    if len(w_shape) != 1 or w_shape[0] < 1:
        raise ValueError(f"{name}.weights: expected shape [m] with m >= 1, got {w_shape}")
    if len(x_shape) < 1 or x_shape[0] != w_shape[0]:
        raise ValueError(
            f"{name}.positions: expected shape [{w_shape[0]}, ...] (leading axis = number of "
            f"weights), got {x_shape}"
        )
    w = _checks.concrete(particles.weights)
    if w is not None:
        if not np.issubdtype(w.dtype, np.floating):
            raise ValueError(f"{name}.weights: expected a float array, got dtype {w.dtype}")
        if not np.isfinite(w).all():
            bad = w[~np.isfinite(w)][:5]
            raise ValueError(f"{name}.weights: expected finite values, got {bad}")
        if (w < 0).any():
            raise ValueError(f"{name}.weights: expected nonnegative values, got min {w.min()}")
    _checks.check_finite_tree(f"{name}.positions", particles.positions)
