"""Free-support (lam, tau)-barycenters by noisy particle gradient descent."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from ...models._particles import Particles
from .. import _save
from .._iterate import iterate
from .._trajectory import Trajectory
from ..measures._langevin import noisy_particle_step
from ._entropic import barycentric_projection, check_cloud


def check_measures(measures, name="measures") -> tuple:
    """``K >= 1`` well-formed `Particles` whose points share one shape; returns that shape."""
    if not isinstance(measures, (list, tuple)) or len(measures) == 0:
        raise ValueError(f"{name}: expected a non-empty list of Particles, got {measures!r}")
    for k, nu in enumerate(measures):
        check_cloud(nu, f"{name}[{k}]")
    dims = {np.shape(nu.positions)[1:] for nu in measures}
    if len(dims) != 1:
        raise ValueError(f"{name}: expected points of one shape, got {sorted(dims)}")
    return next(iter(dims))


def barycenter_particles(
    measures: list[Particles],
    weights: jax.Array,
    *,
    lam: float | jax.Array,
    tau: float | jax.Array,
    n_particles: int,
    key: jax.Array,
    lr: float | jax.Array,
    steps: int,
    init: jax.Array | None = None,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    observables: dict | None = None,
    **ot_options: Any,
) -> Trajectory:
    """Free-support ``(lam, tau)``-barycenter by noisy particle gradient descent.

    ``X <- X - lr sum_k w_k (X - T_k(X)) + sqrt(2 tau lr) xi``, with ``T_k`` the entropic
    barycentric projection (`barycentric_projection`) of the uniform measure on ``X`` onto
    ``nu_k``: the Euler-Maruyama scheme of the mean-field Langevin dynamics of
    ``sum_k w_k T_lam(mu, nu_k) + tau H(mu)`` (Chizat, "Doubly regularized entropic Wasserstein
    barycenters"). The step is the `noisy_particle_step` of mean-field Langevin, run by
    `iterate`, so it sweeps over ``(lam, tau)`` with `sweep`. Whether every Sinkhorn solve of
    every step converged is ``stats.inner_ok`` (status 4 when one did not).

    Args:
      measures: ``K`` target `Particles` with positions ``[n_k, d]`` (mass 1 each).
      weights: ``[K]`` nonnegative, summing to 1.
      lam: ``> 0``; tau: ``>= 0`` (0: no noise, the inner-only barycenter).
      n_particles: number of particles of the barycenter.
      key: PRNG key: split once into the key of the initial draw (used only when ``init`` is
        None) and the key of the noise.
      lr, steps, n_save, spacing, save_steps, observables: the scan loop (`iterate`); default
        observable: the particles' variance per coordinate.
      init: ``[n_particles, d]`` initial positions; default standard normal draws around the
        weighted mean of the measures.
      **ot_options: ``threshold``, ``max_iterations`` and other options of `entropic_ot`.

    Returns:
      `Trajectory` whose ``final`` is the barycenter's `Particles` (uniform weights).
    """
    d_shape = check_measures(measures)
    _checks.check_simplex("weights", weights, len(measures))
    for k, nu in enumerate(measures):
        mass = _checks.concrete(nu.mass)
        if mass is not None and abs(float(mass) - 1) > _checks.simplex_tolerance(mass.dtype, 1):
            raise ValueError(f"measures[{k}].weights: expected mass 1, got {float(mass)}")
    _checks.check_positive("lam", lam)
    _checks.check_positive("tau", tau, allow_zero=True)
    n_particles = _checks.check_positive_int("n_particles", n_particles)
    _checks.check_key("key", key)
    key, k0 = jax.random.split(key)
    if init is None:
        center = sum(
            wk * jnp.mean(nu.positions, axis=0) for wk, nu in zip(weights, measures, strict=True)
        )
        init = center[None] + jax.random.normal(k0, (n_particles,) + d_shape)
    elif np.shape(init) != (n_particles,) + d_shape:
        raise ValueError(f"init: expected shape {(n_particles,) + d_shape}, got {np.shape(init)}")
    uniform = jnp.full(n_particles, 1.0 / n_particles, init.dtype)

    def drift(mu, args):
        del args
        total, ok = 0.0, jnp.array(True)
        for wk, nu in zip(weights, measures, strict=True):
            image, out = barycentric_projection(mu, nu, lam=lam, **ot_options)
            total = total + wk * (mu.positions - image)
            ok = ok & out.converged
        return total, ok

    if observables is None:
        observables = {"variance": lambda t, p: jnp.var(p.positions, axis=0)}
    return iterate(
        noisy_particle_step(drift, lr=lr, temperature=tau),
        Particles(uniform, init),
        steps=steps,
        n_save=n_save,
        spacing=spacing,
        save_steps=save_steps,
        observables=observables,
        key=key,
        dt=lr,
    )
