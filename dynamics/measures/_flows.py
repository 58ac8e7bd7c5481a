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

from ...models import _checks
from ...models._particles import Particles, check_particles
from .. import _save
from .._integrate import VectorField, integrate
from .._iterate import Stepper, iterate
from .._trajectory import Trajectory
from ._geometry import conic_step, wfr_velocity
from ._variation import Objective, check_objective, first_variation

RETRACTIONS = ("mirror", "euclidean")


def _rates(alpha, beta):
    _checks.check_positive("alpha", alpha, allow_zero=True)
    _checks.check_positive("beta", beta, allow_zero=True)


def wfr_field(
    objective: Objective,
    *,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    normalize: bool = False,
) -> VectorField:
    """The WFR vector field ``field(t, particles, args) -> d particles / dt`` (module docstring).

    With ``normalize=True`` the mass equation is projected onto probability measures:
    ``dw_i/dt = -beta w_i (V(x_i) - sum_j w_j V(x_j) / sum_j w_j)``, which conserves the mass.
    ``args`` (when not None) is handed to the objective as its second argument.

    Raises:
      ValueError: negative or non-finite rates, a non-callable objective.
    """
    _checks.check_callable("objective", objective)
    _rates(alpha, beta)

    def field(t, particles, args):
        del t
        v, grad_v = first_variation(objective, particles, args)
        return wfr_velocity(particles, v, grad_v, alpha=alpha, beta=beta, normalize=normalize)

    return field


def default_observables(objective, observables, args=None):
    """``{"objective": F, "mass": mu(X)}`` unless the caller gave its own."""
    if observables is not None:
        return observables
    return {
        "objective": lambda t, p: objective(p) if args is None else objective(p, args),
        "mass": lambda t, p: p.mass,
    }


def wfr_flow(
    objective: Objective,
    particles: Particles,
    *,
    t1: float | jax.Array,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    normalize: bool = False,
    args: Any = None,
    observables: dict[str, Callable] | None = None,
    **integrator_options: Any,
) -> Trajectory:
    """Wasserstein-Fisher-Rao gradient flow of ``objective`` from ``particles`` to time ``t1``.

    ``dx_i/dt = -alpha grad V(x_i)``, ``dw_i/dt = -beta w_i V(x_i)`` (module docstring for the
    ``r^2 = w`` convention). Integrated by `integrate` (adaptive Tsit5 by default).

    Args:
      objective: ``F(particles) -> scalar`` (or ``F(particles, args)``); its first variation
        comes from autodiff.
      particles: initial `Particles` (``weights [m] >= 0``, ``positions [m, ...]``).
      t1: final time.
      alpha, beta: transport and reaction rates (>= 0).
      normalize: project onto probability measures (mass conserved).
      args: data handed to the objective.
      observables: ``{name: fn(t, particles)}``; default the objective and the total mass.
      **integrator_options: any keyword of `integrate` (``ts``, ``n_save``, ``solver``, ...).

    Returns:
      `Trajectory` with ``final`` a `Particles`.

    Raises:
      ValueError: malformed particles (negative or non-finite weights, positions whose leading
        axis differs from the weights), an objective that does not return a scalar, negative
        rates.
    """
    check_objective(objective, particles, args)
    field = wfr_field(objective, alpha=alpha, beta=beta, normalize=normalize)
    return integrate(
        field,
        particles,
        t1=t1,
        args=args,
        observables=default_observables(objective, observables, args),
        **integrator_options,
    )


def wasserstein_flow(
    objective: Objective, particles: Particles, *, t1: float | jax.Array, alpha=1.0, **options
) -> Trajectory:
    """Wasserstein gradient flow ``dx_i/dt = -alpha grad V(x_i)``, masses fixed (`wfr_flow` with
    ``beta = 0``; the same keywords)."""
    _checks.check_positive("alpha", alpha)
    return wfr_flow(objective, particles, t1=t1, alpha=alpha, beta=0.0, **options)


def fisher_rao_flow(
    objective: Objective, particles: Particles, *, t1: float | jax.Array, beta=1.0, **options
) -> Trajectory:
    """Fisher-Rao gradient flow ``dw_i/dt = -beta w_i V(x_i)``, positions fixed (`wfr_flow` with
    ``alpha = 0``; the same keywords)."""
    _checks.check_positive("beta", beta)
    return wfr_flow(objective, particles, t1=t1, alpha=0.0, beta=beta, **options)


def conic_particle_step(
    objective: Objective,
    *,
    lr: float | jax.Array,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    retraction: str = "mirror",
) -> Stepper:
    """One step of conic particle gradient descent (Chizat 2022), as a `Stepper`.

    ``x_i <- x_i - lr alpha grad V(x_i)`` and, for the masses,

    * ``"mirror"``: ``w_i <- w_i exp(-lr beta V(x_i))`` (multiplicative: weights stay positive);
    * ``"euclidean"``: gradient step on the radii ``r_i = sqrt(w_i)``,
      ``r_i <- r_i (1 - lr (beta/2) V(x_i))``, i.e. ``w_i <- w_i (1 - lr beta V / 2)^2``.

    Both are first-order consistent with `wfr_flow` (``dt = lr``).

    Args:
      objective: ``F(particles)`` or ``F(particles, batch)`` (then ``step(state, batch)``).
      lr: step size ``> 0``; alpha, beta: rates ``>= 0``; retraction: see above.

    Returns:
      ``Stepper(init(particles) -> particles, step(particles, args=None) -> particles)``.
    """
    _checks.check_option("retraction", retraction, RETRACTIONS)
    _checks.check_callable("objective", objective)
    _checks.check_positive("lr", lr)
    _rates(alpha, beta)

    def init(particles, *, key=None):
        del key
        return particles

    def step(particles, args=None):
        v, grad_v = first_variation(objective, particles, args)
        return conic_step(
            particles, v, grad_v, lr=lr, alpha=alpha, beta=beta, retraction=retraction
        )

    return Stepper(init, step)


def conic_particle_gd(
    objective: Objective,
    particles: Particles,
    *,
    lr: float | jax.Array,
    steps: int,
    alpha: float | jax.Array = 1.0,
    beta: float | jax.Array = 1.0,
    retraction: str = "mirror",
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    args: Any = None,
    batches: Any = None,
    observables: dict[str, Callable] | None = None,
) -> Trajectory:
    """Conic particle gradient descent (Chizat 2022): `conic_particle_step` run by `iterate`.

    Save times are flow times ``t = k lr``; ``n_save``, ``spacing``, ``save_steps``, ``args``
    and ``batches`` as in `iterate`. Default observables: the objective and the mass (none
    with ``batches``).

    Returns:
      `Trajectory` with ``final`` a `Particles`.
    """
    if batches is None:
        check_objective(objective, particles, args)
    else:
        check_particles(particles)
    step = conic_particle_step(objective, lr=lr, alpha=alpha, beta=beta, retraction=retraction)
    if batches is not None and observables is None:
        observables = {"mass": lambda t, p: p.mass}
    return iterate(
        step,
        particles,
        steps=steps,
        n_save=n_save,
        spacing=spacing,
        save_steps=save_steps,
        args=args,
        batches=batches,
        observables=default_observables(objective, observables, args),
        dt=lr,
    )
