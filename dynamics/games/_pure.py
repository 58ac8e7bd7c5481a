"""Differentiable two-player zero-sum games in pure strategies: the descent-ascent flow and its
discrete methods.

``x`` (any pytree) is the min player, ``y`` (any pytree) the max player, ``f(x, y)`` the payoff.
The descent-ascent field is

    v(x, y) = (-grad_x f(x, y), +tau grad_y f(x, y)),

with ``tau`` (``ratio``) the max player's time scale. Its flow goes through `integrate`
(`game_flow`); the discrete methods (`descent_ascent_step`, run by `iterate` in
`descent_ascent`) take steps ``eta`` on the field (``eta`` for ``x``, ``tau eta`` for ``y``):

* ``"gda"``: simultaneous GDA, ``z <- z + eta v(z)`` (explicit Euler of the flow);
* ``"alternating"``: ``x <- x - eta grad_x f(x, y)``, then ``y <- y + tau eta grad_y f(x_new, y)``;
* ``"extragradient"`` (Korpelevich 1976): ``w = z + eta v(z)``, ``z <- z + eta v(w)``;
* ``"optimistic"`` (Popov 1980; Daskalakis et al. 2018): ``z <- z + eta (2 v(z_k) - v(z_{k-1}))``,
  with ``v(z_{-1}) = v(z_0)`` (a plain GDA first step: optax's
  ``optimistic_gradient_descent(eta)`` convention, run on ``f`` for ``x`` and on ``-f`` for ``y``);
* ``"proximal"`` (proximal point, Rockafellar 1976): the implicit step ``z <- w`` with
  ``w = z + eta v(w)``, solved by the fixed-point iteration ``w <- z + eta v(w)`` from ``w = z``
  (a contraction when ``eta Lip(v) < 1``), stopped when ``max |w_new - w| <= prox_tol`` or after
  ``prox_iterations`` (then the step's ``inner_ok`` is False and `Trajectory.stats` says so).

Their local linear rates at a stationary point come from `local_analysis` (Wang & Chizat 2023,
"Local convergence of gradient methods for min-max games: partial curvature generically
suffices").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from .. import _save
from .._integrate import VectorField, integrate
from .._iterate import Stepper, iterate
from .._trajectory import Trajectory

PyTree = Any
Payoff = Callable[..., jax.Array]  # f(x, y) or f(x, y, args) -> scalar

METHODS = ("gda", "alternating", "extragradient", "optimistic", "proximal")

_tmap = jax.tree_util.tree_map


def _call(f, x, y, args):
    return f(x, y) if args is None else f(x, y, args)


def check_payoff(f: Payoff, x: PyTree, y: PyTree, args: Any = None, name: str = "f") -> None:
    """Raises unless ``f(x, y[, args])`` traces to a real scalar."""
    _checks.check_callable(name, f)
    call = f"{name}(x, y)" if args is None else f"{name}(x, y, args)"
    _checks.check_scalar_fn(name, lambda x, y: _call(f, x, y, args), x, y, call=call)


def _grads(f, x, y, args):
    return jax.grad(lambda x, y: _call(f, x, y, args), argnums=(0, 1))(x, y)


def _field(f, ratio):
    def field(t, z, args):
        del t
        gx, gy = _grads(f, *z, args)
        return _tmap(jnp.negative, gx), _tmap(lambda g: ratio * g, gy)

    return field


def game_field(f: Payoff, *, ratio: float | jax.Array = 1.0) -> VectorField:
    """The descent-ascent field ``field(t, (x, y), args) = (-grad_x f, ratio grad_y f)``
    (diffrax's ``ODETerm`` contract; ``args``, when not None, is passed as ``f(x, y, args)``)."""
    _checks.check_callable("f", f)
    _checks.check_positive("ratio", ratio)
    return _field(f, ratio)


def _default_observables(f, args, ratio):
    def grad_norm(t, z):
        gx, gy = _grads(f, *z, args)
        leaves = jax.tree_util.tree_leaves(gx) + [ratio * g for g in jax.tree_util.tree_leaves(gy)]
        return jnp.sqrt(sum(jnp.sum(g**2) for g in leaves))

    return {"payoff": lambda t, z: _call(f, *z, args), "field_norm": grad_norm}


def _check_start(f, x0, y0, args):
    _checks.check_finite_tree("x0", x0)
    _checks.check_finite_tree("y0", y0)
    x0, y0 = _tmap(jnp.asarray, (x0, y0))
    check_payoff(f, x0, y0, args)
    return x0, y0


def game_flow(
    f: Payoff,
    x0: PyTree,
    y0: PyTree,
    *,
    t1: float | jax.Array,
    ratio: float | jax.Array = 1.0,
    args: Any = None,
    observables: dict[str, Callable] | None = None,
    **integrator_options: Any,
) -> Trajectory:
    """The descent-ascent flow ``dx/dt = -grad_x f``, ``dy/dt = ratio grad_y f`` to time ``t1``.

    Integrated by `integrate` (adaptive Tsit5 by default). Near a stationary point ``z*`` the
    flow converges at the rate ``-max Re eig(J)`` of the field's Jacobian (`local_analysis`).

    Args:
      f: payoff ``f(x, y) -> scalar`` (or ``f(x, y, args)``); ``x`` minimizes, ``y`` maximizes.
      x0, y0: initial strategies (any pytrees of float arrays, finite).
      t1: final time.
      ratio: the max player's time scale ``tau > 0``.
      args: data handed to ``f``.
      observables: ``{name: fn(t, (x, y))}``; default the payoff and ``|v(x, y)|``
        (``"field_norm"``, zero exactly at stationary points).
      **integrator_options: any keyword of `integrate`.

    Returns:
      `Trajectory` with ``final = (x, y)``.

    Raises:
      ValueError: non-finite starts, a payoff that does not return a real scalar, ``ratio <= 0``.
    """
    x0, y0 = _check_start(f, x0, y0, args)
    field = game_field(f, ratio=ratio)
    if observables is None:
        observables = _default_observables(f, args, ratio)
    return integrate(
        field, (x0, y0), t1=t1, args=args, observables=observables, **integrator_options
    )


class GameState(NamedTuple):
    """State of `descent_ascent_step`: the strategies, the previous field value ``(vx, vy)``
    (optimistic GDA; ``None`` for the other methods), the step count and whether the last
    proximal inner solve converged."""

    x: PyTree
    y: PyTree
    previous: PyTree
    count: jax.Array
    inner_ok: jax.Array


def _axpy(a, u, v):  # u + a v over pytrees
    return _tmap(lambda p, q: p + a * q, u, v)


def descent_ascent_step(
    f: Payoff,
    *,
    eta: float | jax.Array,
    method: str = "gda",
    ratio: float | jax.Array = 1.0,
    prox_tol: float | None = None,
    prox_iterations: int = 200,
) -> Stepper:
    """One step of a descent-ascent method (module docstring), as a `Stepper`.

    Args:
      f: payoff ``f(x, y)`` or ``f(x, y, args)`` (then ``step(state, args)``).
      eta: step size ``> 0`` (``ratio * eta`` for the max player).
      method: one of `METHODS`.
      ratio: the max player's time scale ``> 0``.
      prox_tol: stopping tolerance of the proximal inner iteration (``"proximal"`` only);
        default ``1e3 eps (1 + max |z|)`` in the iterate's dtype.
      prox_iterations: most fixed-point iterations per proximal step.

    Returns:
      ``Stepper(init((x, y)) -> GameState, step(state, args=None), value = (x, y),
      inner_ok)``.
    """
    _checks.check_callable("f", f)
    _checks.check_positive("eta", eta)
    _checks.check_option("method", method, METHODS)
    _checks.check_positive("ratio", ratio)
    if prox_tol is not None:
        _checks.check_positive("prox_tol", prox_tol)
    prox_iterations = _checks.check_positive_int("prox_iterations", prox_iterations)
    field = _field(f, ratio)

    def v(z, args):
        return field(None, z, args)

    def init(z, *, key=None):
        del key
        x, y = z
        prev = None if method != "optimistic" else _tmap(jnp.zeros_like, (x, y))
        return GameState(x, y, prev, jnp.zeros((), jnp.int32), jnp.array(True))

    def proximal(z, args):
        leaves = jax.tree_util.tree_leaves(z)
        dtype = jnp.result_type(*leaves)
        scale = 1.0 + jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in leaves]))
        tol = prox_tol if prox_tol is not None else 1e3 * jnp.finfo(dtype).eps * scale

        def body(c):
            w, _, i = c
            w_new = _axpy(eta, z, v(w, args))
            diffs = _tmap(lambda a, b: jnp.max(jnp.abs(a - b)), w_new, w)
            change = jnp.max(jnp.stack(jax.tree_util.tree_leaves(diffs)))
            return w_new, change, i + 1

        def cond(c):
            _, change, i = c
            return (change > tol) & (i < prox_iterations)

        w, change, _ = jax.lax.while_loop(cond, body, (z, jnp.asarray(jnp.inf, dtype), 0))
        return w, change <= tol

    def step(state, args=None):
        z = (state.x, state.y)
        ok, prev = jnp.array(True), state.previous
        if method == "gda":
            z = _axpy(eta, z, v(z, args))
        elif method == "alternating":
            x = _axpy(eta, state.x, v(z, args)[0])
            y = _axpy(eta, state.y, v((x, state.y), args)[1])
            z = (x, y)
        elif method == "extragradient":
            z = _axpy(eta, z, v(_axpy(eta, z, v(z, args)), args))
        elif method == "optimistic":
            g = v(z, args)
            first = state.count == 0
            old = _tmap(lambda a, b: jnp.where(first, a, b), g, prev)
            z = _tmap(lambda p, a, b: p + eta * (2 * a - b), z, g, old)
            prev = g
        else:
            z, ok = proximal(z, args)
        return GameState(*z, prev, state.count + 1, ok)

    return Stepper(init, step, value=lambda s: (s.x, s.y), inner_ok=lambda s: s.inner_ok)


def descent_ascent(
    f: Payoff,
    x0: PyTree,
    y0: PyTree,
    *,
    eta: float | jax.Array,
    steps: int,
    method: str = "gda",
    ratio: float | jax.Array = 1.0,
    prox_tol: float | None = None,
    prox_iterations: int = 200,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    args: Any = None,
    observables: dict[str, Callable] | None = None,
) -> Trajectory:
    """Runs `descent_ascent_step` ``steps`` times with `iterate` (save times ``t = k eta``, the
    flow time of the descent-ascent flow it discretizes).

    Divergence (simultaneous GDA on a bilinear game) is data: the run's ``stats.nonfinite_t``
    is the first save time at which the iterate overflowed.

    Args:
      f, eta, method, ratio, prox_tol, prox_iterations: see `descent_ascent_step`.
      x0, y0: initial strategies (finite pytrees).
      steps: number of steps; n_save, spacing, save_steps: the save points (see `iterate`).
      args: handed to ``f`` at every step.
      observables: ``{name: fn(t, (x, y))}``; default the payoff and ``|v(x, y)|``.

    Returns:
      `Trajectory` with ``final = (x, y)``.
    """
    x0, y0 = _check_start(f, x0, y0, args)
    stepper = descent_ascent_step(
        f,
        eta=eta,
        method=method,
        ratio=ratio,
        prox_tol=prox_tol,
        prox_iterations=prox_iterations,
    )
    if observables is None:
        observables = _default_observables(f, args, ratio)
    return iterate(
        stepper,
        (x0, y0),
        steps=steps,
        n_save=n_save,
        spacing=spacing,
        save_steps=save_steps,
        args=args,
        observables=observables,
        dt=eta,
    )


def flat_field(f: Payoff, x: PyTree, y: PyTree, args: Any, ratio: Any):
    """The field as a function of the flat vector ``z = ravel((x, y))``, the split index and the
    flat point (for `local_analysis`)."""
    flat, unravel = jax.flatten_util.ravel_pytree((x, y))
    nx = int(np.size(jax.flatten_util.ravel_pytree(x)[0]))
    field = _field(f, ratio)
    return (lambda z: jax.flatten_util.ravel_pytree(field(None, unravel(z), args))[0]), nx, flat
