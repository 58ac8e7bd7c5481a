"""The first variation of an objective over measures, by autodiff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ...models import _checks
from ...models._particles import Particles, check_particles
from .._iterate import call_with_args

Objective = Callable[..., jax.Array]  # F(particles) or F(particles, batch) -> scalar


def first_variation(
    objective: Objective, particles: Particles, args: Any = None
) -> tuple[jax.Array, jax.Array]:
    """The first variation ``V = F'(mu)`` of ``F`` at the particles, and its gradient, by autodiff.

    For ``F(mu)`` written as a function of ``Particles``: ``dF/dw_i = V(x_i)`` and
    ``dF/dx_i = w_i grad V(x_i)``, so one reverse pass gives both. Where ``w_i = 0`` the gradient
    is reported as 0 (a massless particle's ``grad V`` is not recoverable from ``dF/dx_i``).

    Args:
      objective: ``F(particles) -> scalar``, or ``F(particles, args)`` when ``args`` is given.
      particles: `Particles` with ``weights [m]``, ``positions [m, ...]``.
      args: a minibatch or other data handed to the objective (None: not passed).

    Returns:
      ``(V [m], grad_V [m, ...])``.
    """
    check_objective(objective, particles, args)
    grads = jax.grad(lambda p: call_with_args(objective, p, args))(particles)
    w = particles.weights
    safe = jnp.where(w > 0, w, 1.0)
    shape = (-1,) + (1,) * (particles.positions.ndim - 1)
    grad_v = jnp.where(jnp.reshape(w > 0, shape), grads.positions / jnp.reshape(safe, shape), 0.0)
    return grads.weights, grad_v


def check_objective(objective: Objective, particles: Particles, args: Any = None) -> None:
    """Raises ValueError unless ``objective(particles[, args])`` is a real scalar."""
    check_particles(particles)
    _checks.check_callable("objective", objective)
    _checks.check_scalar_fn(
        "objective",
        lambda p: call_with_args(objective, p, args),
        particles,
        call="objective(particles)" if args is None else "objective(particles, args)",
    )
