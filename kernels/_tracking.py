"""Sharpness along training: a `Stepper` wrapper that carries the top Hessian eigenvector as
the next Lanczos warm start (see `flowax.kernels.curvature`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..dynamics._iterate import Stepper
from ..models import _checks
from .curvature import top_eigenpairs

PyTree = Any


class Tracked(NamedTuple):
    """What observables see of a `track_sharpness` state: the parameters and the sharpness
    estimate at them (``nan`` between updates is never shown: it is set at ``init``)."""

    params: PyTree
    sharpness: jax.Array


class TrackState(NamedTuple):
    """State of `track_sharpness`: the wrapped stepper's state, the top eigenvector estimate
    (pytree like the parameters, the next warm start), the sharpness, whether the last Lanczos
    run converged, and the step count (int32)."""

    inner: PyTree
    vector: PyTree
    sharpness: jax.Array
    converged: jax.Array
    count: jax.Array


def track_sharpness(
    stepper,
    loss: Callable[[PyTree], jax.Array],
    *,
    key: jax.Array,
    every: int = 1,
    num_iters: int = 5,
    cold_iters: int = 30,
    tol: float = 1e-3,
):
    """Wraps a `flowax.dynamics.Stepper` so that its state carries the sharpness of ``loss``.

    At ``init`` a cold Lanczos run (``cold_iters`` steps) finds the top Hessian eigenpair; then
    every ``every`` steps ``num_iters`` Lanczos steps warm-started at the previous top
    eigenvector update it: along training the eigenvector moves little, so a few
    Hessian-vector products per update replace a cold run (``benchmarks`` measure it). Run it
    with `flowax.dynamics.iterate` (observables see `Tracked(params, sharpness)`, e.g.
    ``{"sharpness": lambda t, x: x.sharpness, "loss": lambda t, x: loss(x.params)}``; save at
    multiples of ``every``), or step it in your own loop. Whether every Lanczos update met
    ``tol`` is folded into ``stats.inner_ok``. The cadence is a ``cond`` on the step count: a
    real branch in a lone run or a ``sweep(batching="map")``, both branches under ``vmap``.

    Edge of stability (Cohen et al. 2021, "Gradient descent on neural networks typically occurs
    at the edge of stability"): full-batch GD with step ``eta`` drives this value up to about
    ``2 / eta`` and keeps it there.

    Args:
      stepper: the `Stepper` to wrap (e.g. `flowax.dynamics.descent_step`).
      loss: ``loss(params) -> scalar`` whose Hessian is tracked (full batch, or a fixed batch).
      key: PRNG key of the Lanczos start vectors.
      every: steps between updates (Python int >= 1).
      num_iters, cold_iters: Lanczos steps of a warm update and of the cold start.
      tol: relative residual for ``converged``.

    Returns:
      ``Stepper(init(x, *, key=None) -> TrackState, step(state, args=None), value -> Tracked,
      inner_ok)``.
    """
    if not isinstance(stepper, Stepper):
        raise ValueError(
            f"stepper: expected a flowax.dynamics.Stepper, got {type(stepper).__name__}"
        )
    _checks.check_callable("loss", loss)
    _checks.check_key("key", key)
    every = _checks.check_positive_int("every", every)
    num_iters = _checks.check_positive_int("num_iters", num_iters)
    cold_iters = _checks.check_positive_int("cold_iters", cold_iters)
    _checks.check_positive("tol", tol)

    key_ = key  # init's own `key` keyword (the wrapped stepper's) shadows this one

    def top(params, n, k, v0):
        eig = top_eigenpairs(loss, params, k=1, num_iters=n, key=k, tol=tol, v0=v0)
        return jax.tree_util.tree_map(lambda v: v[0], eig.vectors), eig.values[0], eig.converged

    def init(x, *, key=None):
        inner = stepper.init(x) if key is None else stepper.init(x, key=key)
        params = stepper.value(inner)
        n = ravel_pytree(params)[0].shape[0]
        vec, value, ok = top(params, min(cold_iters, n), jax.random.fold_in(key_, 0), None)
        return TrackState(inner, vec, value, ok, jnp.zeros((), jnp.int32))

    def step(state, args=None):
        inner = stepper.step(state.inner, args)
        count = state.count + 1
        params = stepper.value(inner)
        n = ravel_pytree(params)[0].shape[0]

        def update(_):
            return top(params, min(num_iters, n), jax.random.fold_in(key_, count + 1), state.vector)

        def keep(_):
            return state.vector, state.sharpness, state.converged

        vec, value, ok = jax.lax.cond(count % every == 0, update, keep, None)
        return TrackState(inner, vec, value, ok, count)

    def inner_ok(state):
        ok = state.converged
        if stepper.inner_ok is not None:
            ok = ok & stepper.inner_ok(state.inner)
        return ok

    return Stepper(
        init, step, value=lambda s: Tracked(stepper.value(s.inner), s.sharpness), inner_ok=inner_ok
    )
