"""Measures as particles, and the first variation of an objective by autodiff."""

from __future__ import annotations

from collections.abc import Callable
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
        raise ValueError(f"{name}: expected flowax.dynamics.Particles, got {got}")
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
        if not np.isfinite(w).all():
            bad = w[~np.isfinite(w)][:5]
            raise ValueError(f"{name}.weights: expected finite values, got {bad}")
        if (w < 0).any():
            raise ValueError(f"{name}.weights: expected nonnegative values, got min {w.min()}")
    _checks.check_finite_tree(f"{name}.positions", particles.positions)


def check_objective(objective: Callable, particles: Particles) -> None:
    """Raises ValueError unless ``objective(particles)`` is a real scalar."""
    _checks.check_callable("objective", objective)
    _checks.check_scalar_fn("objective", objective, particles)


def first_variation(
    objective: Callable[[Particles], jax.Array], particles: Particles
) -> tuple[jax.Array, jax.Array]:
    """The first variation ``V = F'(mu)`` of ``F`` at the particles, and its gradient, by autodiff.

    For ``F(mu)`` written as a function of ``Particles``: ``dF/dw_i = V(x_i)`` and
    ``dF/dx_i = w_i grad V(x_i)``, so one reverse pass gives both. Where ``w_i = 0`` the gradient
    is reported as 0 (a massless particle's ``grad V`` is not recoverable from ``dF/dx_i``).

    Returns:
      ``(V [m], grad_V [m, ...])``.
    """
    grads = jax.grad(objective)(particles)
    w = particles.weights
    safe = jnp.where(w > 0, w, 1.0)
    shape = (-1,) + (1,) * (particles.positions.ndim - 1)
    grad_v = jnp.where(jnp.reshape(w > 0, shape), grads.positions / jnp.reshape(safe, shape), 0.0)
    return grads.weights, grad_v
