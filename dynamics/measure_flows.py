"""Wasserstein, Fisher-Rao and Wasserstein-Fisher-Rao flows of particle measures, and conic GD.

The flows of ``mu = sum_i w_i delta_{x_i}`` for an objective ``F(mu)`` with first variation
``V = F'(mu)`` (computed by autodiff, see `first_variation`):

    dx_i/dt = -alpha grad V(x_i),        dw_i/dt = -beta w_i V(x_i).

``beta = 0`` is the Wasserstein gradient flow (positions move, masses fixed), ``alpha = 0`` the
Fisher-Rao flow (masses change, positions fixed), both > 0 the Wasserstein-Fisher-Rao (WFR,
"unbalanced transport") flow. References: Chizat and Bach (2018), "On the global convergence of
gradient descent for over-parameterized models using optimal transport"; Chizat (2022), "Sparse
optimization on measures with over-parameterized gradient descent".

Lifted convention: with ``w_i = r_i^2`` and ``G(r, x) = F(sum_i r_i^2 delta_{x_i})`` one has
``dG/dr_i = 2 r_i V(x_i)`` and ``dG/dx_i = r_i^2 grad V(x_i)``, so the flow above is
``dr_i/dt = -(beta/4) dG/dr_i`` and ``dx_i/dt = -alpha r_i^{-2} dG/dx_i``: the gradient flow of
``G`` in the conic metric with rate ``beta/4`` on the radii, i.e. ``dr_i/dt = -(beta/2) r_i V``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks
from .descent import iterate
from .integrate import integrate
from .particles import Particles, check_objective, check_particles, first_variation
from .trajectory import Trajectory

RETRACTIONS = ("mirror", "euclidean")


def _rates(alpha, beta):
    _checks.check_positive("alpha", alpha, allow_zero=True)
    _checks.check_positive("beta", beta, allow_zero=True)


def wfr_field(
    objective: Callable[[Particles], jax.Array],
    *,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    normalize: bool = False,
) -> Callable:
    """The WFR vector field ``field(t, particles, args) -> d particles / dt`` (see module doc).

    With ``normalize=True`` the mass equation is projected onto probability measures:
    ``dw_i/dt = -beta w_i (V(x_i) - sum_j w_j V(x_j) / sum_j w_j)``, which conserves the mass.
    """

    def field(t, particles, args):
        del t, args
        v, grad_v = first_variation(objective, particles)
        w = particles.weights
        if normalize:
            v = v - jnp.sum(w * v) / jnp.sum(w)
        return Particles(-beta * w * v, -alpha * grad_v)

    return field


def _default_observables(objective, observables):
    if observables is None:
        return {"objective": lambda t, p: objective(p), "mass": lambda t, p: p.mass}
    return observables


def wfr_flow(
    objective: Callable[[Particles], jax.Array],
    particles: Particles,
    *,
    t1: float | jax.Array,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    normalize: bool = False,
    ts: jax.Array | None = None,
    observables: dict[str, Callable] | None = None,
    **integrator_options: Any,
) -> Trajectory:
    """Wasserstein-Fisher-Rao gradient flow of ``objective`` from ``particles`` to time ``t1``.

    ``dx_i/dt = -alpha grad V(x_i)``, ``dw_i/dt = -beta w_i V(x_i)`` (module docstring for the
    ``r^2 = w`` convention). Integrated by `integrate` (adaptive Tsit5 by default).

    Args:
      objective: ``F(particles) -> scalar``; its first variation comes from autodiff.
      particles: initial `Particles` (``weights [m] >= 0``, ``positions [m, ...]``).
      t1: final time.
      alpha, beta: transport and reaction rates (>= 0).
      normalize: project onto probability measures (mass conserved).
      ts, observables, **integrator_options: as in `integrate`; default observables are the
        objective and the total mass.

    Returns:
      `Trajectory` with ``final`` a `Particles`.

    Raises:
      ValueError: malformed particles (negative or non-finite weights, positions whose leading
        axis differs from the weights), an objective that does not return a scalar, negative
        rates.
    """
    check_particles(particles)
    check_objective(objective, particles)
    _rates(alpha, beta)
    field = wfr_field(objective, alpha=alpha, beta=beta, normalize=normalize)
    return integrate(
        field,
        particles,
        t1=t1,
        ts=ts,
        observables=_default_observables(objective, observables),
        **integrator_options,
    )


def wasserstein_flow(objective, particles, *, t1, alpha=1.0, **kwargs) -> Trajectory:
    """Wasserstein gradient flow ``dx_i/dt = -alpha grad V(x_i)``, masses fixed (beta = 0)."""
    return wfr_flow(objective, particles, t1=t1, alpha=alpha, beta=0.0, **kwargs)


def fisher_rao_flow(objective, particles, *, t1, beta=1.0, **kwargs) -> Trajectory:
    """Fisher-Rao gradient flow ``dw_i/dt = -beta w_i V(x_i)``, positions fixed (alpha 0)."""
    return wfr_flow(objective, particles, t1=t1, alpha=0.0, beta=beta, **kwargs)


def conic_particle_step(
    objective: Callable[[Particles], jax.Array],
    *,
    lr: float | jax.Array,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    retraction: str = "mirror",
) -> Callable[[Particles], Particles]:
    """One step of conic particle gradient descent (Chizat 2022), usable in a user's own loop.

    ``x_i <- x_i - lr alpha grad V(x_i)`` and, for the masses,

    * ``"mirror"``: ``w_i <- w_i exp(-lr beta V(x_i))`` (multiplicative: weights stay positive);
    * ``"euclidean"``: gradient step on the radii ``r_i = sqrt(w_i)``,
      ``r_i <- r_i (1 - lr (beta/2) V(x_i))``, i.e. ``w_i <- w_i (1 - lr beta V / 2)^2``.

    Both are first-order consistent with `wfr_flow` (``dt = lr``).
    """
    if retraction not in RETRACTIONS:
        raise ValueError(f"retraction: expected one of {RETRACTIONS}, got {retraction!r}")
    _checks.check_positive("lr", lr)
    _rates(alpha, beta)

    def step(particles):
        v, grad_v = first_variation(objective, particles)
        w = particles.weights
        if retraction == "mirror":
            w = w * jnp.exp(-lr * beta * v)
        else:
            w = w * (1.0 - 0.5 * lr * beta * v) ** 2
        return Particles(w, particles.positions - lr * alpha * grad_v)

    return step


def conic_particle_gd(
    objective: Callable[[Particles], jax.Array],
    particles: Particles,
    *,
    lr: float | jax.Array,
    steps: int,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    retraction: str = "mirror",
    save_every: int = 1,
    observables: dict[str, Callable] | None = None,
) -> Trajectory:
    """Conic particle gradient descent (Chizat 2022) run by the shared scan loop `iterate`.

    See `conic_particle_step` for the update. Save times are flow times ``t = k lr``.

    Returns:
      `Trajectory` with ``final`` a `Particles`.
    """
    check_particles(particles)
    check_objective(objective, particles)
    step = conic_particle_step(objective, lr=lr, alpha=alpha, beta=beta, retraction=retraction)
    return iterate(
        step,
        particles,
        steps=steps,
        save_every=save_every,
        observables=_default_observables(objective, observables),
        dt=lr,
    )
