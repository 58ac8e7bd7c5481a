"""The one ``lax.scan`` loop for discrete-time algorithms, and gradient descent on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import _checks
from .trajectory import (
    STATUS_NONFINITE,
    STATUS_OK,
    Stats,
    Trajectory,
    first_nonfinite_time,
    tree_all_finite,
)

PyTree = Any


def iterate(
    step: Callable[[PyTree], PyTree],
    state: PyTree,
    *,
    steps: int,
    save_every: int = 1,
    observables: dict[str, Callable] | None = None,
    observe: Callable[[PyTree], PyTree] = lambda s: s,
    dt: float | jax.Array = 1.0,
) -> Trajectory:
    """Runs ``state <- step(state)`` ``steps`` times in one ``lax.scan``, saving observables.

    Observables ``fn(t, observe(state))`` are evaluated at steps ``k = 0, save_every, ..., steps``
    at times ``t = k dt``. The discrete counterpart of `integrate`, shared by every discrete
    algorithm in flowax (gradient descent, optax optimizers, particle and proximal steps).

    Args:
      step: ``state -> state``, a pure function (jit-compatible).
      state: initial state pytree.
      steps: number of steps (Python int), a multiple of ``save_every``.
      save_every: steps between saves (Python int).
      observables: ``{name: fn(t, x)}`` with ``x = observe(state)``.
      observe: what the observables (and ``Trajectory.final``) see of the state.
      dt: time per step.

    Returns:
      `Trajectory` with ``ts [steps // save_every + 1]``, ``final = observe(last state)`` and
      `Stats` (``nonfinite_t``: first save time at which ``observe(state)`` or an observable was
      non-finite).
    """
    _checks.check_positive_int("steps", steps)
    _checks.check_positive_int("save_every", save_every)
    if steps % save_every:
        raise ValueError(
            f"save_every: expected a divisor of steps = {steps}, got save_every = {save_every}"
        )
    observables = _checks.check_observables(observables)
    _checks.check_positive("dt", dt)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(observe(state)), float)
    dt = jnp.asarray(dt, dtype)

    def record(k, s):
        t = k * dt
        x = observe(s)
        vals = {name: fn(t, x) for name, fn in observables.items()}
        return vals, tree_all_finite(x) & tree_all_finite(vals)

    def inner(s, _):
        return step(s), None

    def outer(carry, _):
        s, k = carry
        s, _ = jax.lax.scan(inner, s, None, length=save_every)
        k = k + save_every
        return (s, k), record(k, s)

    first = record(jnp.asarray(0, dtype), state)
    (final, _), rest = jax.lax.scan(
        outer, (state, jnp.asarray(0, dtype)), None, length=steps // save_every
    )
    vals, finite = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    ts = jnp.arange(steps // save_every + 1, dtype=dtype) * (save_every * dt)
    nonfinite_t = first_nonfinite_time(ts, finite, jnp.ones_like(finite))
    n = jnp.asarray(steps, jnp.int32)
    stats = Stats(
        num_steps=n,
        num_accepted=n,
        num_rejected=jnp.zeros((), jnp.int32),
        status=jnp.where(jnp.isfinite(nonfinite_t), STATUS_NONFINITE, STATUS_OK).astype(jnp.int32),
        t_final=steps * dt,
        nonfinite_t=nonfinite_t,
    )
    return Trajectory(ts, vals, observe(final), stats)


class DescentState(NamedTuple):
    """State of `descent_step`: ``params``, the optimizer state, and ``count`` (int32)."""

    params: PyTree
    opt_state: PyTree
    count: jax.Array


class Stepper(NamedTuple):
    """A discrete algorithm as two pure functions: ``init(params) -> state``, ``step(state)``."""

    init: Callable[[PyTree], PyTree]
    step: Callable[[PyTree], PyTree]


def _optimizer(lr, optimizer):
    if (lr is None) == (optimizer is None):
        raise ValueError(
            "lr: pass exactly one of lr (plain gradient descent) and optimizer (an optax "
            f"GradientTransformation); got lr={lr!r}, optimizer={type(optimizer).__name__}"
        )
    if optimizer is None:
        _checks.check_positive("lr", lr)
        return optax.sgd(lr)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"optimizer: expected an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    return optimizer


def descent_step(
    loss: Callable[[PyTree], jax.Array],
    *,
    lr: float | jax.Array | None = None,
    optimizer: optax.GradientTransformation | None = None,
) -> Stepper:
    """One step of gradient descent ``theta <- theta - lr grad L(theta)``, or of an optax optimizer.

    Drops into a user's own jitted loop::

        stepper = descent_step(loss, lr=0.1)
        state = stepper.init(params)
        for _ in range(100):
            state = jax.jit(stepper.step)(state)

    Args:
      loss: ``L(params) -> scalar``.
      lr: step size of plain gradient descent (exclusive with ``optimizer``).
      optimizer: an optax ``GradientTransformation`` (exclusive with ``lr``).
    """
    _checks.check_callable("loss", loss)
    opt = _optimizer(lr, optimizer)

    def init(params):
        return DescentState(params, opt.init(params), jnp.zeros((), jnp.int32))

    def step(state):
        grads = jax.grad(loss)(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return DescentState(optax.apply_updates(state.params, updates), opt_state, state.count + 1)

    return Stepper(init, step)


def gradient_descent(
    loss: Callable[[PyTree], jax.Array],
    params: PyTree,
    *,
    lr: float | jax.Array | None = None,
    steps: int,
    optimizer: optax.GradientTransformation | None = None,
    save_every: int = 1,
    observables: dict[str, Callable] | None = None,
) -> Trajectory:
    """Gradient descent ``theta_{k+1} = theta_k - lr grad L(theta_k)`` (or an optax optimizer).

    With ``lr`` the save times are flow times ``t = k lr``: this is exactly the explicit Euler
    scheme of `gradient_flow` with ``dt = lr``. With ``optimizer`` the save times are step counts.

    Args:
      loss: ``L(params) -> scalar``.
      params: initial parameters (finite).
      lr: step size (> 0) of plain gradient descent, or None when ``optimizer`` is given.
      steps: number of steps (Python int > 0).
      optimizer: an optax ``GradientTransformation``; exclusive with ``lr``.
      save_every: save the observables every this many steps (a divisor of ``steps``).
      observables: ``{name: fn(t, params)}``; default ``{"loss": L}``.

    Returns:
      `Trajectory` with ``final`` the parameters after ``steps`` steps.
    """
    stepper = descent_step(loss, lr=lr, optimizer=optimizer)
    _checks.check_finite_tree("params", params)
    _checks.check_scalar_fn("loss", loss, params)
    if observables is None:
        observables = {"loss": lambda t, p: loss(p)}
    return iterate(
        stepper.step,
        stepper.init(params),
        steps=steps,
        save_every=save_every,
        observables=observables,
        observe=lambda s: s.params,
        dt=1.0 if lr is None else lr,
    )
