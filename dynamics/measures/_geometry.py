"""The Wasserstein-Fisher-Rao (conic) geometry of particle measures, and the domains particles
live on: shared by the measure flows (`wfr_field`, `conic_particle_step`) and the particle
methods for games (`flowax.dynamics.games`).

Given the first variation ``V`` of an objective at the particles and its gradient, the WFR
velocity of ``mu = sum_i w_i delta_{x_i}`` is ``(dw_i, dx_i) = (-beta w_i V(x_i),
-alpha P_{x_i} grad V(x_i))``, with ``P_x`` the projection on the domain's tangent space; its
explicit "conic" step (Chizat 2022) is the mirror (multiplicative) step on the weights and the
gradient step on the positions, followed by the domain's retraction.

Domains (`DOMAINS`):

* ``"euclidean"``: positions ``[m, ...]`` anywhere, ``P = I``, no retraction;
* ``"torus"``: the flat torus ``[0, 1)^d``, positions ``[m, d]``; ``P = I``, retraction
  ``x mod 1`` (objectives must be 1-periodic in every coordinate);
* ``"sphere"``: the unit sphere ``S^{d-1}``, positions ``[m, d]`` with ``d >= 2`` and unit norms;
  ``P_x g = g - (g . x) x``, retraction ``x / |x|``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from ...models._particles import Particles

DOMAINS = ("euclidean", "torus", "sphere")


def check_domain(name: str, domain: Any, positions: Any) -> None:
    """Raises unless ``domain`` is one of `DOMAINS` and ``positions`` ``[m, ...]`` fit it."""
    _checks.check_option(name, domain, DOMAINS)
    if domain == "euclidean":
        return
    shape = np.shape(positions)
    if len(shape) != 2:
        raise ValueError(
            f"{name}: the {domain} domain expects positions of shape [m, d], got {shape}"
        )
    x = _checks.concrete(positions)
    if domain == "sphere":
        if shape[1] < 2:
            raise ValueError(
                f"{name}: the sphere domain expects positions [m, d] with d >= 2, got {shape}"
            )
        if x is not None:
            err = float(np.max(np.abs(np.linalg.norm(x, axis=1) - 1.0)))
            tol = 1e3 * float(np.finfo(x.dtype).eps) if np.issubdtype(x.dtype, np.floating) else 0
            if err > max(tol, 1e-9):
                raise ValueError(
                    f"{name}: the sphere domain expects unit-norm positions, got norms off by "
                    f"up to {err:.3g}"
                )


def tangent(domain: str, x: jax.Array, g: jax.Array) -> jax.Array:
    """``P_x g``: the projection of ``g`` ``[m, ...]`` on the tangent spaces at ``x``."""
    if domain == "sphere":
        return g - jnp.sum(g * x, axis=-1, keepdims=True) * x
    return g


def retract(domain: str, x: jax.Array) -> jax.Array:
    """Maps positions back onto the domain (wrap on the torus, normalize on the sphere)."""
    if domain == "torus":
        return x - jnp.floor(x)
    if domain == "sphere":
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x


def centered(w: jax.Array, v: jax.Array) -> jax.Array:
    """``V - sum_j w_j V_j / sum_j w_j``: the first variation on probability measures."""
    return v - jnp.sum(w * v) / jnp.sum(w)


def wfr_velocity(
    particles: Particles,
    v: jax.Array,
    grad_v: jax.Array,
    *,
    alpha: Any,
    beta: Any,
    normalize: bool = False,
    domain: str = "euclidean",
) -> Particles:
    """``(-beta w V, -alpha P grad V)`` (``V`` centered with ``normalize``: mass conserved)."""
    w = particles.weights
    if normalize:
        v = centered(w, v)
    return Particles(-beta * w * v, -alpha * tangent(domain, particles.positions, grad_v))


def conic_step(
    particles: Particles,
    v: jax.Array,
    grad_v: jax.Array,
    *,
    lr: Any,
    alpha: Any,
    beta: Any,
    retraction: str = "mirror",
    normalize: bool = False,
    domain: str = "euclidean",
) -> Particles:
    """One explicit conic step from ``particles`` with the first variation ``v`` ``[m]`` and its
    gradient ``grad_v`` ``[m, ...]`` (evaluated wherever the method chooses: at the particles
    for an explicit step, at a half step for mirror prox).

    Weights: ``"mirror"`` ``w <- w exp(-lr beta V)`` (then ``/ sum`` with ``normalize``, computed
    as a softmax of ``log w - lr beta V``, so no weight under- or overflows); ``"euclidean"``
    the gradient step on the radii ``r = sqrt(w)``, ``w <- w (1 - lr beta V / 2)^2``.
    Positions: ``x <- R(x - lr alpha P_x grad V)`` with the domain's projection and retraction.
    """
    w = particles.weights
    if retraction == "mirror" and normalize:
        w = jax.nn.softmax(jnp.log(w) - lr * beta * v)
    elif retraction == "mirror":
        w = w * jnp.exp(-lr * beta * v)
    else:
        w = w * (1.0 - 0.5 * lr * beta * v) ** 2
        if normalize:
            w = w / jnp.sum(w)
    x = particles.positions
    x = retract(domain, x - lr * alpha * tangent(domain, x, grad_v))
    return Particles(w, x)
