"""Mean-field Langevin dynamics of particle measures, with temperature schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from .descent import iterate
from .integrate import integrate
from .particles import Particles, check_objective, check_particles, first_variation
from .trajectory import Trajectory


class LangevinState(NamedTuple):
    """State of `mean_field_langevin`: the particles, the PRNG key, the step count (int32)."""

    particles: Particles
    key: jax.Array
    count: jax.Array


def log_annealing(temperature0: float) -> Callable[[jax.Array], jax.Array]:
    """``T(t) = T0 / log(e + t)``: the logarithmic cooling of simulated annealing (Geman and Geman
    1984; Chiang, Hwang and Sheu 1987), slow enough to escape every well of a fixed landscape."""
    _checks.check_positive("temperature0", temperature0)
    return lambda t: temperature0 / jnp.log(jnp.e + t)


def noisy_particle_step(
    drift: Callable[[Particles], jax.Array],
    *,
    lr: float | jax.Array,
    temperature: float | jax.Array | Callable[[jax.Array], jax.Array],
) -> Callable[[LangevinState], LangevinState]:
    """``x_i <- x_i - lr drift(mu)_i + sqrt(2 lr T(t_k)) xi_i``, ``t_k = k lr``, masses unchanged.

    The Euler-Maruyama step shared by `langevin_step` (drift ``grad V_mu``) and
    `flowax.dynamics.barycenter_particles` (drift ``sum_k w_k (x - T_k(x))``).
    ``drift(particles) -> [m, ...]``; ``temperature`` is a number or a function ``T(t)``.
    """
    _checks.check_positive("lr", lr)
    temp = temperature if callable(temperature) else (lambda t: temperature)

    def step(state: LangevinState) -> LangevinState:
        key, sub = jax.random.split(state.key)
        x = state.particles.positions
        noise = jax.random.normal(sub, x.shape, x.dtype)
        t = state.count * lr
        x = x - lr * drift(state.particles) + jnp.sqrt(2.0 * lr * temp(t)) * noise
        return LangevinState(Particles(state.particles.weights, x), key, state.count + 1)

    return step


def run_noisy_particles(
    step: Callable[[LangevinState], LangevinState],
    particles: Particles,
    *,
    key: jax.Array,
    lr: float | jax.Array,
    steps: int,
    save_every: int,
    observables: dict[str, Callable],
) -> Trajectory:
    """Runs a `noisy_particle_step` in the shared scan loop `iterate` (save times ``k lr``)."""
    state = LangevinState(particles, key, jnp.zeros((), jnp.int32))
    return iterate(
        step,
        state,
        steps=steps,
        save_every=save_every,
        observables=observables,
        observe=lambda s: s.particles,
        dt=lr,
    )


def langevin_step(
    objective: Callable[[Particles], jax.Array],
    *,
    lr: float | jax.Array,
    temperature: float | jax.Array | Callable[[jax.Array], jax.Array],
) -> Callable[[LangevinState], LangevinState]:
    """One Euler-Maruyama step of mean-field Langevin dynamics, usable in a user's own loop.

    ``x_i <- x_i - lr grad V_mu(x_i) + sqrt(2 lr T(t_k)) xi_i``, ``xi_i ~ N(0, I)``,
    ``t_k = k lr``; masses are unchanged. ``temperature`` is a number or a function ``T(t)``.
    """
    return noisy_particle_step(
        lambda p: first_variation(objective, p)[1], lr=lr, temperature=temperature
    )


def mean_field_langevin(
    objective: Callable[[Particles], jax.Array],
    particles: Particles,
    *,
    temperature: float | jax.Array,
    lr: float | jax.Array,
    steps: int,
    key: jax.Array,
    schedule: Callable[[jax.Array], jax.Array] | None = None,
    save_every: int = 1,
    observables: dict[str, Callable] | None = None,
    solver: str | Any | None = None,
) -> Trajectory:
    r"""Mean-field Langevin dynamics ``dX = -grad V_mu(X) dt + sqrt(2 T(t)) dB`` by Euler-Maruyama.

    The particles follow the Wasserstein gradient flow of the entropy-regularized free energy
    ``F(mu) + T int log(dmu/dx) dmu`` (Mei, Montanari and Nguyen 2018; Hu, Ren, Siska and Szpruch
    2021; Nitanda, Wu and Suzuki 2022; Chizat 2022). For ``F = int k|x|^2/2 dmu`` the stationary
    law is ``N(0, T/k)``; the scheme with step ``h`` has the stationary variance
    ``T / (k (1 - h k / 2))``.

    Args:
      objective: ``F(particles) -> scalar``; ``grad V_mu`` comes from autodiff.
      particles: initial `Particles`; masses stay fixed (usually uniform).
      temperature: ``T > 0``, or the scale of ``schedule``.
      lr: step ``h > 0``; save times are ``t = k h``.
      steps: number of steps.
      key: PRNG key (split at every step).
      schedule: ``s(t)``; the temperature is ``T(t) = temperature * s(t)`` (annealing, e.g.
        ``lambda t: 1 / log(e + t)``, see `log_annealing`).
      save_every, observables: as in `iterate` (default observables: the objective).
      solver: None (default) runs Euler-Maruyama in the scan loop `iterate`. A diffrax solver
        (a name of `flowax.dynamics.SOLVERS`, e.g. ``"heun"``, or an instance) integrates the
        SDE through `integrate` with fixed steps ``lr`` instead; the noise is additive, so Ito
        and Stratonovich solvers agree (Heun: weak order 2 here).

    Returns:
      `Trajectory` whose ``final`` is the `Particles` after ``steps`` steps.
    """
    check_particles(particles)
    check_objective(objective, particles)
    _checks.check_positive("temperature", temperature)
    if schedule is not None:
        _checks.check_callable("schedule", schedule)
        temp = lambda t: temperature * schedule(t)  # noqa: E731
    else:
        temp = temperature
    if observables is None:
        observables = {"objective": lambda t, p: objective(p)}
    if solver is not None:
        _checks.check_positive_int("steps", steps)
        _checks.check_positive_int("save_every", save_every)
        if steps % save_every:
            raise ValueError(f"save_every: expected a divisor of steps = {steps}")
        temp_fn = temp if callable(temp) else (lambda t: temp)

        def drift(t, p, args):
            _, grad_v = first_variation(objective, p)
            return Particles(jnp.zeros_like(p.weights), -grad_v)

        def noise(t, p, args):
            scale = jnp.sqrt(2.0 * temp_fn(t))
            return Particles(jnp.zeros_like(p.weights), scale * jnp.ones_like(p.positions))

        ts = jnp.arange(0, steps + 1, save_every) * lr
        return integrate(
            drift,
            particles,
            t1=steps * lr,
            ts=ts,
            observables=observables,
            solver=solver,
            dt0=lr,
            diffusion=noise,
            key=key,
            max_steps=steps + 1,
        )
    step = langevin_step(objective, lr=lr, temperature=temp)
    return run_noisy_particles(
        step,
        particles,
        key=key,
        lr=lr,
        steps=steps,
        save_every=save_every,
        observables=observables,
    )
