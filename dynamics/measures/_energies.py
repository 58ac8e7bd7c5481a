"""Energies of measures: potential and interaction energies, as JAX functions of `Particles`."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ...models import _checks
from ...models._particles import Particles


def potential_energy(v: Callable[[jax.Array], jax.Array]) -> Callable[[Particles], jax.Array]:
    """``F(mu) = int v dmu = sum_i w_i v(x_i)``; its first variation is ``v``.

    Args:
      v: ``v(x) -> scalar`` for one position ``x`` (vmapped over particles).
    """
    _checks.check_callable("v", v)

    def objective(p: Particles) -> jax.Array:
        return jnp.sum(p.weights * jax.vmap(v)(p.positions))

    return objective


def interaction_energy(
    kernel: Callable[[jax.Array, jax.Array], jax.Array],
    v: Callable[[jax.Array], jax.Array] | None = None,
) -> Callable[[Particles], jax.Array]:
    """``F(mu) = int v dmu + (1/2) int int k(x, y) dmu(x) dmu(y)``.

    First variation ``V(x) = v(x) + int k(x, y) dmu(y)`` (for symmetric ``k``). Convex in ``mu``
    when ``k`` is a positive-definite kernel. The entropic part of free energies enters through
    the noise of the Langevin dynamics, not through this objective.
    """
    _checks.check_callable("kernel", kernel)
    if v is not None:
        _checks.check_callable("v", v)

    def objective(p: Particles) -> jax.Array:
        gram = jax.vmap(lambda a: jax.vmap(lambda b: kernel(a, b))(p.positions))(p.positions)
        out = 0.5 * p.weights @ gram @ p.weights
        if v is not None:
            out = out + jnp.sum(p.weights * jax.vmap(v)(p.positions))
        return out

    return objective
