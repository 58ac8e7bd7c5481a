"""Gradient flow in parameter space: d theta / dt = -grad L(theta)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from . import _checks
from .integrate import integrate
from .trajectory import Trajectory

PyTree = Any


def gradient_field(loss: Callable[[PyTree], jax.Array]) -> Callable:
    """The vector field ``field(t, theta, args) = -grad L(theta)`` (diffrax's ODETerm contract)."""

    def field(t, params, args):
        del t, args
        return jax.tree_util.tree_map(lambda g: -g, jax.grad(loss)(params))

    return field


def gradient_flow(
    loss: Callable[[PyTree], jax.Array],
    params: PyTree,
    *,
    t1: float | jax.Array,
    ts: jax.Array | None = None,
    observables: dict[str, Callable] | None = None,
    **integrator_options: Any,
) -> Trajectory:
    r"""Gradient flow ``d theta/dt = -grad L(theta)`` from ``theta(0) = params`` to ``t1``.

    The continuous-time limit of gradient descent with step ``eta -> 0`` at time ``t = k eta``;
    integrated by `integrate` (adaptive Tsit5 by default).

    Args:
      loss: ``L(params) -> scalar``, differentiable.
      params: initial parameters (any pytree of float arrays, finite).
      t1: final time (may be traced, e.g. a per-lane horizon inside `sweep`).
      ts: save times; see `integrate` (also ``n_save``, ``spacing``).
      observables: ``{name: fn(t, params)}``; default ``{"loss": L}``. Pass ``{}`` for none.
      **integrator_options: ``t0``, ``n_save``, ``spacing``, ``solver``, ``adaptive``, ``rtol``,
        ``atol``, ``dt0``, ``max_steps`` of `integrate`.

    Returns:
      `Trajectory` whose ``final`` are the parameters at ``t1``.

    Raises:
      ValueError: if ``loss`` does not return a real scalar at ``params`` (e.g. params and data
        of mismatched shapes, reported by the model), if ``params`` has non-finite entries, or
        for any bad option of `integrate`.

    Example:
      >>> traj = gradient_flow(lambda p: 0.5 * jnp.sum(p**2), jnp.ones(2), t1=1.0)
      >>> traj.values["loss"][-1]   # exp(-2)
    """
    _checks.check_callable("loss", loss)
    _checks.check_finite_tree("params", params)
    _checks.check_scalar_fn("loss", loss, params)
    if observables is None:
        observables = {"loss": lambda t, p: loss(p)}
    return integrate(
        gradient_field(loss), params, t1=t1, ts=ts, observables=observables, **integrator_options
    )
