"""Gradient flow and gradient descent in parameter space.

Flow: ``d theta/dt = -grad L(theta)`` through `integrate`. Descent: one step
``theta <- theta - lr grad L(theta)`` (or any optax optimizer) as a `Stepper`, run by `iterate`.
With ``lr`` the descent saves at flow times ``t = k lr``: it is exactly the explicit Euler scheme
of the flow with ``dt0 = lr`` (tested).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..models import _checks
from . import _save
from ._integrate import VectorField, integrate
from ._iterate import Stepper, call_with_args, iterate
from ._rates import check_rates, scale_by_rates
from ._trajectory import Trajectory

PyTree = Any


def gradient_field(loss: Callable[..., jax.Array], *, rates: PyTree = None) -> VectorField:
    """The vector field ``field(t, theta, args) = -eta * grad L(theta[, args])`` (diffrax's ODETerm
    contract; ``args`` is handed to the loss when it is not None).

    ``rates`` (default 1): per-leaf multipliers ``eta``, a prefix tree of the params whose leaves
    are numbers or arrays over the leading axes of the leaves they cover (e.g. a rate per layer of
    weights stacked along a depth axis); see `gradient_flow`.
    """
    _checks.check_callable("loss", loss)
    if rates is None:
        try:  # one field object per loss: integrate's compiled solve is cached on it
            return _plain_field(loss)
        except TypeError:  # an unhashable callable
            pass
    return _field(loss, rates)


@functools.lru_cache(maxsize=128)
def _plain_field(loss):
    return _field(loss, None)


@functools.lru_cache(maxsize=128)
def _loss_observable(loss):
    return lambda t, p: loss(p)


def _field(loss, rates):
    def field(t, params, args):
        del t
        g = jax.grad(lambda p: call_with_args(loss, p, args))(params)
        return jax.tree_util.tree_map(jnp.negative, scale_by_rates(rates, g))

    return field


def gradient_flow(
    loss: Callable[..., jax.Array],
    params: PyTree,
    *,
    t1: float | jax.Array,
    args: PyTree = None,
    observables: dict[str, Callable] | None = None,
    rates: PyTree = None,
    **integrator_options: Any,
) -> Trajectory:
    r"""Gradient flow ``d theta/dt = -grad L(theta)`` from ``theta(0) = params`` to ``t1``.

    The continuous-time limit of gradient descent with step ``eta -> 0`` at time ``t = k eta``;
    integrated by `integrate` (adaptive Tsit5 by default). With ``rates`` each parameter group
    has its own time scale, ``d theta_k/dt = -eta_k dL/d theta_k`` (e.g. the depth-scaled flow
    ``dZ_k/dt = -L dl/dZ_k`` of a ResNet's blocks: `flowax.models.depth_rates`).

    Args:
      loss: ``L(params) -> scalar`` (or ``L(params, args)`` when ``args`` is given).
      params: initial parameters (any pytree of float arrays, finite).
      t1: final time (may be traced, e.g. a per-lane horizon inside `sweep`).
      args: data handed to the loss (and to a traced horizon's lane) as its second argument.
      observables: ``{name: fn(t, params)}``; default ``{"loss": L}``. Pass ``{}`` for none.
      rates: per-leaf rate multipliers ``eta_k >= 0``: a prefix tree of ``params`` whose leaves
        are numbers, or arrays whose shape is the leading axes of the leaves they scale (a rate
        per layer of stacked weights). Default: 1 everywhere.
      **integrator_options: any keyword of `integrate` (``ts``, ``n_save``, ``spacing``,
        ``t0``, ``solver``, ``adaptive``, ``rtol``, ``atol``, ``dt0``, ``max_steps``,
        ``steady_state``: stop once the RMS norm of the gradient is below it).

    Returns:
      `Trajectory` whose ``final`` are the parameters at ``t1``.

    Raises:
      ValueError: if ``loss`` does not return a real scalar at ``params`` (e.g. params and data
        of mismatched shapes, reported by the model), if ``params`` has non-finite entries, or
        for any bad option of `integrate`.

    Examples:
      >>> traj = gradient_flow(lambda p: 0.5 * jnp.sum(p**2), jnp.ones(2), t1=1.0)
      >>> print(f"{traj.values['loss'][-1]:.6f}")   # exp(-2)
      0.135335
    """
    _checks.check_callable("loss", loss)
    _checks.check_finite_tree("params", params)
    fn = lambda p: call_with_args(loss, p, args)  # noqa: E731
    _checks.check_scalar_fn("loss", fn, params, call="loss(params)")
    check_rates(rates, params)
    if observables is None:
        observables = {"loss": _default_observable(loss, args)}
    return integrate(
        gradient_field(loss, rates=rates),
        params,
        t1=t1,
        args=args,
        observables=observables,
        **integrator_options,
    )


def _default_observable(loss, args):
    """``L(p)`` as an observable; one object per loss when there are no args (so a second call
    with the same loss and shapes reuses the compiled solve)."""
    if args is None:
        try:
            return _loss_observable(loss)
        except TypeError:
            pass
    return lambda t, p: call_with_args(loss, p, args)


class DescentState(NamedTuple):
    """State of `descent_step`: ``params``, the optimizer state, and ``count`` (int32)."""

    params: PyTree
    opt_state: PyTree
    count: jax.Array


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
    loss: Callable[..., jax.Array],
    *,
    lr: float | jax.Array | None = None,
    optimizer: optax.GradientTransformation | None = None,
    rates: PyTree = None,
) -> Stepper:
    """One step of gradient descent ``theta <- theta - lr grad L(theta)``, or of an optax optimizer.

    A `Stepper`; drops into a user's own jitted loop with a minibatch per step::

        stepper = descent_step(lambda p, batch: loss(p, batch), lr=0.1)
        state = stepper.init(params)
        step = jax.jit(stepper.step)
        for batch in batches:
            state = step(state, batch)

    Args:
      loss: ``L(params) -> scalar``, or ``L(params, args)`` for steps given ``args``.
      lr: step size of plain gradient descent (exclusive with ``optimizer``).
      optimizer: an optax ``GradientTransformation`` (exclusive with ``lr``).
      rates: per-leaf multipliers of the updates (after the optimizer), as in `gradient_flow`:
        ``theta_k <- theta_k - lr eta_k grad_k L``.

    Returns:
      ``Stepper(init(params) -> DescentState, step(state, args=None), value = state.params)``.
    """
    _checks.check_callable("loss", loss)
    opt = _optimizer(lr, optimizer)
    if rates is None:
        try:  # one Stepper per (loss, lr, optimizer): iterate's compiled loop is cached on it
            return _plain_stepper(loss, lr, optimizer)
        except TypeError:  # an unhashable loss, lr (an array) or optimizer
            pass
    return _stepper(loss, opt, rates)


@functools.lru_cache(maxsize=128)
def _plain_stepper(loss, lr, optimizer):
    return _stepper(loss, _optimizer(lr, optimizer), None)


def _stepper(loss, opt, rates):
    def init(params, *, key=None):
        del key
        check_rates(rates, params)
        return DescentState(params, opt.init(params), jnp.zeros((), jnp.int32))

    def step(state, args=None):
        grads = jax.grad(lambda p: call_with_args(loss, p, args))(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        updates = scale_by_rates(rates, updates)
        return DescentState(optax.apply_updates(state.params, updates), opt_state, state.count + 1)

    return Stepper(init, step, value=lambda s: s.params)


def gradient_descent(
    loss: Callable[..., jax.Array],
    params: PyTree,
    *,
    steps: int,
    lr: float | jax.Array | None = None,
    optimizer: optax.GradientTransformation | None = None,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    args: PyTree = None,
    batches: PyTree = None,
    observables: dict[str, Callable] | None = None,
    rates: PyTree = None,
) -> Trajectory:
    """Gradient descent ``theta_{k+1} = theta_k - lr grad L(theta_k)`` (or an optax optimizer).

    With ``lr`` the save times are flow times ``t = k lr``: this is exactly the explicit Euler
    scheme of `gradient_flow` with ``dt0 = lr``. With ``optimizer`` the save times are step
    counts.

    Args:
      loss: ``L(params) -> scalar``, or ``L(params, batch)`` with ``args`` / ``batches``.
      params: initial parameters (finite).
      steps: number of steps (Python int > 0).
      lr: step size (> 0) of plain gradient descent, or None when ``optimizer`` is given.
      optimizer: an optax ``GradientTransformation``; exclusive with ``lr``.
      n_save, spacing, save_steps: the save points (see `iterate`; default 101).
      args: handed to the loss at every step; batches: per-step minibatches (leading axis
        ``steps``), see `iterate`.
      observables: ``{name: fn(t, params)}``; default ``{"loss": L}`` (with ``args``:
        ``L(params, args)``; with ``batches``: none, pass your own).
      rates: per-leaf multipliers of the updates, as in `gradient_flow` (with ``lr`` and
        ``rates`` this is the Euler scheme of the flow with those rates).

    Returns:
      `Trajectory` with ``final`` the parameters after ``steps`` steps.
    """
    stepper = descent_step(loss, lr=lr, optimizer=optimizer, rates=rates)
    _checks.check_finite_tree("params", params)
    check_rates(rates, params)
    if batches is None:
        fn = lambda p: call_with_args(loss, p, args)  # noqa: E731
        _checks.check_scalar_fn("loss", fn, params, call="loss(params)")
        if observables is None:
            observables = {"loss": _default_observable(loss, args)}
    return iterate(
        stepper,
        params,
        steps=steps,
        n_save=n_save,
        spacing=spacing,
        save_steps=save_steps,
        observables=observables,
        args=args,
        batches=batches,
        dt=1.0 if lr is None else lr,
    )
