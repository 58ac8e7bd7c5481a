"""Mean-field Langevin dynamics of particle measures, with temperature schedules.

    dX_t = -grad V_{mu_t}(X_t) dt + sqrt(2 T(t)) dB_t,

the Wasserstein gradient flow of the entropy-regularized free energy
``F(mu) + T int log(dmu/dx) dmu`` (Mei, Montanari and Nguyen 2018; Hu, Ren, Siska and Szpruch
2021; Nitanda, Wu and Suzuki 2022; Chizat 2022), by Euler-Maruyama steps in the scan loop
(`langevin_step`, `mean_field_langevin`), or by any diffrax SDE solver through `integrate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ...models import _checks
from ...models._particles import Particles, check_particles
from .. import _save
from .._integrate import integrate
from .._iterate import Stepper, iterate
from .._trajectory import Trajectory
from ._variation import Objective, check_objective, first_variation

Temperature = float | jax.Array | Callable[[jax.Array], jax.Array]


class LangevinState(NamedTuple):
    """State of a noisy particle step: the particles, the PRNG key, the step count (int32), and
    whether the inner solver of the last drift converged (always true for MFLD)."""

    particles: Particles
    key: jax.Array
    count: jax.Array
    inner_ok: jax.Array


def log_annealing(temperature0: float) -> Callable[[jax.Array], jax.Array]:
    """``T(t) = T0 / log(e + t)``: the logarithmic cooling of simulated annealing (Geman and Geman
    1984; Chiang, Hwang and Sheu 1987), slow enough to escape every well of a fixed landscape.
    Pass it as the ``temperature`` of `mean_field_langevin` or `langevin_step`."""
    _checks.check_positive("temperature0", temperature0)
    return lambda t: temperature0 / jnp.log(jnp.e + t)


def _temperature_fn(
    temperature: Temperature, allow_zero: bool = False
) -> Callable[[jax.Array], jax.Array]:
    if not callable(temperature):
        _checks.check_positive("temperature", temperature, allow_zero=allow_zero)
    return temperature if callable(temperature) else (lambda t: temperature)


def noisy_particle_step(
    drift: Callable[[Particles, Any], tuple[jax.Array, jax.Array]],
    *,
    lr: float | jax.Array,
    temperature: Temperature,
) -> Stepper:
    """``x_i <- x_i - lr drift(mu)_i + sqrt(2 lr T(t_k)) xi_i``, ``t_k = k lr``, masses unchanged.

    The Euler-Maruyama step shared by `langevin_step` (drift ``grad V_mu``) and
    `flowax.dynamics.transport.barycenter_particles` (drift ``sum_k w_k (x - T_k(x))``).
    ``drift(particles, args) -> ([m, ...], converged)``.
    """
    _checks.check_positive("lr", lr)
    temp = _temperature_fn(temperature, allow_zero=True)

    def init(particles, *, key=None):
        _checks.check_key("key", key)
        return LangevinState(particles, key, jnp.zeros((), jnp.int32), jnp.array(True))

    def step(state: LangevinState, args=None) -> LangevinState:
        key, sub = jax.random.split(state.key)
        x = state.particles.positions
        noise = jax.random.normal(sub, x.shape, x.dtype)
        t = state.count * lr
        d, ok = drift(state.particles, args)
        x = x - lr * d + jnp.sqrt(2.0 * lr * temp(t)) * noise
        return LangevinState(Particles(state.particles.weights, x), key, state.count + 1, ok)

    return Stepper(init, step, value=lambda s: s.particles, inner_ok=lambda s: s.inner_ok)


def langevin_step(
    objective: Objective, *, lr: float | jax.Array, temperature: Temperature
) -> Stepper:
    """One Euler-Maruyama step of mean-field Langevin dynamics, as a `Stepper`.

    ``x_i <- x_i - lr grad V_mu(x_i) + sqrt(2 lr T(t_k)) xi_i``, ``xi_i ~ N(0, I)``,
    ``t_k = k lr``; masses are unchanged.

    Args:
      objective: ``F(particles)`` or ``F(particles, batch)`` (then ``step(state, batch)``).
      lr: step ``h > 0``.
      temperature: ``T > 0``, or a schedule ``T(t)`` such as `log_annealing`.

    Returns:
      ``Stepper(init(particles, *, key) -> LangevinState, step(state, args=None),
      value = state.particles)``.

    Examples:
      >>> stepper = langevin_step(potential_energy(lambda x: 0.5 * x @ x), lr=0.1,
      ...                         temperature=0.5)
      >>> state = stepper.init(Particles(jnp.ones(4) / 4, jnp.zeros((4, 2))),
      ...                      key=jax.random.key(0))
      >>> state = jax.jit(stepper.step)(state)
      >>> stepper.value(state).positions.shape
      (4, 2)
    """
    _checks.check_callable("objective", objective)
    _temperature_fn(temperature)
    return noisy_particle_step(
        lambda p, args: (first_variation(objective, p, args)[1], jnp.array(True)),
        lr=lr,
        temperature=temperature,
    )


def mean_field_langevin(
    objective: Objective,
    particles: Particles,
    *,
    temperature: Temperature,
    lr: float | jax.Array,
    steps: int,
    key: jax.Array,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    args: Any = None,
    batches: Any = None,
    observables: dict[str, Callable] | None = None,
    solver: str | Any | None = None,
) -> Trajectory:
    r"""Mean-field Langevin dynamics ``dX = -grad V_mu(X) dt + sqrt(2 T(t)) dB`` (module doc).

    For ``F = int k|x|^2/2 dmu`` the stationary law is ``N(0, T/k)``; the Euler-Maruyama scheme
    with step ``h`` has the stationary variance ``T / (k (1 - h k / 2))``.

    Args:
      objective: ``F(particles) -> scalar`` (or ``F(particles, batch)``); ``grad V_mu`` comes
        from autodiff.
      particles: initial `Particles`; masses stay fixed (usually uniform).
      temperature: ``T > 0``, or a schedule ``T(t)`` (annealing, e.g. `log_annealing`).
      lr: step ``h > 0``; save times are ``t = k h``.
      steps: number of steps.
      key: PRNG key (split at every step).
      n_save, spacing, save_steps, args, batches: as in `iterate` (``batches`` only on the
        default path).
      observables: default the objective.
      solver: None (default) runs Euler-Maruyama in the scan loop `iterate`. A diffrax solver
        (a name of `flowax.dynamics.SOLVERS`, e.g. ``"heun"``, or an instance) integrates the
        SDE through `integrate` with fixed steps ``lr`` instead; the noise is additive, so Ito
        and Stratonovich solvers agree (Heun: weak order 2 here). The two paths draw different
        Brownian increments from the same key (the same law, not the same path).

    Returns:
      `Trajectory` whose ``final`` is the `Particles` after ``steps`` steps.
    """
    _checks.check_key("key", key)
    if batches is None:
        check_objective(objective, particles, args)
    else:
        check_particles(particles)
    temp = _temperature_fn(temperature)
    if observables is None:
        observables = (
            {}
            if batches is not None
            else {"objective": lambda t, p: objective(p) if args is None else objective(p, args)}
        )
    if solver is None:
        return iterate(
            langevin_step(objective, lr=lr, temperature=temperature),
            particles,
            steps=steps,
            n_save=n_save,
            spacing=spacing,
            save_steps=save_steps,
            observables=observables,
            args=args,
            batches=batches,
            key=key,
            dt=lr,
        )
    if batches is not None:
        raise ValueError("batches: per-step minibatches need solver=None (the scan loop)")
    steps = _checks.check_positive_int("steps", steps)
    _checks.check_positive("lr", lr)
    ks = _save.save_steps(steps, n_save, spacing, save_steps)

    def drift(t, p, a):
        _, grad_v = first_variation(objective, p, a)
        return Particles(jnp.zeros_like(p.weights), -grad_v)

    def noise(t, p, a):
        scale = jnp.sqrt(2.0 * temp(t))
        return Particles(jnp.zeros_like(p.weights), scale * jnp.ones_like(p.positions))

    return integrate(
        drift,
        particles,
        t1=steps * lr,
        ts=jnp.asarray(ks) * lr,
        args=args,
        observables=observables,
        solver=solver,
        dt0=lr,
        diffusion=noise,
        key=key,
        max_steps=steps + 1,
    )
