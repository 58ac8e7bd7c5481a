"""Sharpness along training: a `Stepper` wrapper that carries the top Hessian eigenvector as
the next Lanczos warm start, and the same warm-started scan along a saved path of parameters
(a `gradient_flow` trajectory, a user's checkpoints); see `flowax.kernels.curvature`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
    every: int | Any = 1,
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
      every: steps between updates (Python int >= 1), or the explicit step counts at which to
        update (increasing ints >= 1, e.g. ``iterate``'s save steps, so that every saved value
        is the sharpness at the saved parameters).
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
    if isinstance(every, (int, np.integer)):
        every = _checks.check_positive_int("every", every)
        due = lambda count: count % every == 0  # noqa: E731
    else:
        at = _update_steps(every)
        due = lambda count: jnp.any(count == at)  # noqa: E731
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

        vec, value, ok = jax.lax.cond(due(count), update, keep, None)
        return TrackState(inner, vec, value, ok, count)

    def inner_ok(state):
        ok = state.converged
        if stepper.inner_ok is not None:
            ok = ok & stepper.inner_ok(state.inner)
        return ok

    return Stepper(
        init, step, value=lambda s: Tracked(stepper.value(s.inner), s.sharpness), inner_ok=inner_ok
    )


def _update_steps(every):
    try:
        at = np.asarray(every)
    except Exception:  # noqa: BLE001
        at = np.asarray(None)
    if at.ndim != 1 or at.size == 0 or not np.issubdtype(at.dtype, np.integer):
        raise ValueError(
            f"every: expected a positive int or a non-empty 1-d sequence of step counts, "
            f"got {every!r}"
        )
    if np.any(at < 1) or np.any(np.diff(at) <= 0):
        raise ValueError(f"every: expected increasing step counts >= 1, got {at.tolist()}")
    return jnp.asarray(at, jnp.int32)


class SharpnessPath(NamedTuple):
    """`sharpness_path`'s result: ``values [T]`` the top Hessian eigenvalue at each point,
    ``vectors`` its unit eigenvector (pytree like the parameters with a leading ``T`` axis),
    ``residuals [T]`` (``||H v - lambda v||``) and ``converged [T]`` (relative residual below
    ``tol``)."""

    values: jax.Array
    vectors: PyTree
    residuals: jax.Array
    converged: jax.Array


def sharpness_path(
    loss: Callable[..., jax.Array],
    path: PyTree,
    *args: Any,
    key: jax.Array,
    num_iters: int = 5,
    cold_iters: int = 30,
    tol: float = 1e-3,
) -> SharpnessPath:
    """The sharpness at every point of a saved path of parameters, warm-started along it.

    ``path`` is a pytree like the parameters with a leading axis ``T`` (e.g. the values of an
    observable ``{"params": lambda t, p: p}`` of `flowax.dynamics.gradient_flow`, or stacked
    checkpoints of a user's loop). The first point gets a cold Lanczos run of ``cold_iters``
    steps; every later point ``num_iters`` steps started at the previous top eigenvector, in one
    ``lax.scan`` (so a few Hessian-vector products per point when the path moves little between
    saves; check ``converged``, and save more often or raise ``num_iters`` where it is False).

    Args:
      loss: ``loss(params, *args) -> scalar``.
      path: parameters with a leading axis ``T >= 1``.
      *args: extra arguments of the loss (the data), the same at every point.
      key: PRNG key of the start vectors.
      num_iters, cold_iters: Lanczos steps of a warm update and of the first (cold) point.
      tol: relative residual for ``converged``.

    Returns:
      `SharpnessPath`.
    """
    _checks.check_callable("loss", loss)
    _checks.check_key("key", key)
    num_iters = _checks.check_positive_int("num_iters", num_iters)
    cold_iters = _checks.check_positive_int("cold_iters", cold_iters)
    _checks.check_positive("tol", tol)
    _checks.check_finite_tree("path", path)
    leaves = jax.tree_util.tree_leaves(path)
    lengths = {np.shape(x)[:1] for x in leaves}
    if not leaves or len(lengths) != 1 or lengths == {()} or lengths == {(0,)}:
        raise ValueError(
            f"path: expected parameters with a common leading axis T >= 1, got leading shapes "
            f"{sorted(lengths)}"
        )
    first = jax.tree_util.tree_map(lambda x: x[0], path)
    n = ravel_pytree(first)[0].shape[0]

    def top(params, m, k, v0):
        eig = top_eigenpairs(loss, params, *args, k=1, num_iters=min(m, n), key=k, tol=tol, v0=v0)
        one = lambda a: a[0]  # noqa: E731
        return (
            jax.tree_util.tree_map(one, eig.vectors),
            eig.values[0],
            eig.residuals[0],
            eig.converged,
        )

    out0 = top(first, cold_iters, jax.random.fold_in(key, 0), None)
    rest = jax.tree_util.tree_map(lambda x: x[1:], path)
    count = next(iter(lengths))[0]

    def body(vec, xs):
        params, i = xs
        out = top(params, num_iters, jax.random.fold_in(key, i), vec)
        return out[0], out

    _, outs = jax.lax.scan(body, out0[0], (rest, jnp.arange(1, count)))
    vecs, values, res, ok = jax.tree_util.tree_map(
        lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b]), out0, outs
    )
    return SharpnessPath(values, vecs, res, ok)
