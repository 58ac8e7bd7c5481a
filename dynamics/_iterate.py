"""The one ``lax.scan`` loop of every discrete algorithm, and the one step contract it runs.

A discrete algorithm is a `Stepper` (the optax factory convention: a NamedTuple of pure
functions, hyperparameters in the closure)::

    stepper = flowax.dynamics.descent_step(loss, lr=0.1)      # or conic_particle_step, ...
    state = stepper.init(params)                              # init(x, *, key=None)
    step = jax.jit(stepper.step)                              # jit once, outside the loop
    for batch in batches:
        state = step(state, batch)                            # step(state, args=None)
    params = stepper.value(state)

`iterate` runs the same stepper in one compiled ``lax.scan`` with observables and saves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks
from . import _save
from ._trajectory import (
    STATUS_OK,
    Stats,
    Trajectory,
    first_nonfinite_time,
    status_code,
    tree_all_finite,
)

PyTree = Any


def _identity(state):
    return state


class Stepper(NamedTuple):
    """A discrete algorithm as pure functions; the contract of every step in flowax.

    Attributes:
      init: ``init(x, *, key=None) -> state`` from the iterate ``x`` (parameters, particles);
        stochastic steppers need ``key``.
      step: ``step(state, args=None) -> state``, one step; ``args`` carries this step's
        minibatch (passed to the loss / objective as its second argument) or anything else
        the step reads. Pure and jit-compatible.
      value: ``value(state) -> x``, the iterate inside a state (what observables see).
      inner_ok: ``inner_ok(state) -> bool``, whether the inner solver of the last step
        converged (e.g. the Sinkhorn solves of a transport step); ``None`` if it has none.
    """

    init: Callable[..., PyTree]
    step: Callable[..., PyTree]
    value: Callable[[PyTree], PyTree] = _identity
    inner_ok: Callable[[PyTree], jax.Array] | None = None


def call_with_args(fn: Callable, x: PyTree, args: Any) -> Any:
    """``fn(x)`` when ``args`` is None, else ``fn(x, args)``: how steps hand a minibatch on."""
    return fn(x) if args is None else fn(x, args)


def _init(stepper: Stepper, x0, key):
    return stepper.init(x0) if key is None else stepper.init(x0, key=key)


def iterate(
    stepper: Stepper,
    x0: PyTree,
    *,
    steps: int,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    observables: dict[str, Callable] | None = None,
    args: PyTree = None,
    batches: PyTree = None,
    key: jax.Array | None = None,
    dt: float | jax.Array = 1.0,
) -> Trajectory:
    """Runs ``state <- stepper.step(state, args_k)`` ``steps`` times in one ``lax.scan``.

    The discrete counterpart of `integrate`, shared by every discrete algorithm in flowax.
    Observables ``fn(t, stepper.value(state))`` are evaluated after ``k`` steps for ``k`` in the
    save set, at times ``t = k dt``. The save set is `integrate`'s: ``n_save`` points spaced by
    ``spacing`` over ``[0, steps]`` (rounded to steps, repeats merged, so a loop of fewer than
    ``n_save`` steps saves every step), or explicit ``save_steps``.

    Args:
      stepper: a `Stepper`.
      x0: the initial iterate, passed to ``stepper.init``.
      steps: number of steps (Python int >= 1).
      n_save: number of save points (default 101, including ``k = 0`` and ``k = steps``).
      spacing: ``"linear"`` or ``"log"`` (as in `integrate`).
      save_steps: explicit increasing step indices in ``[0, steps]`` (overrides ``n_save``).
      observables: ``{name: fn(t, x)}`` with ``x = stepper.value(state)``.
      args: passed to every step (e.g. the full data set).
      batches: a pytree whose leaves have a leading axis of size ``steps``: step ``k`` gets
        ``batches[k]`` as its ``args`` (minibatches, per-step keys). Exclusive with ``args``.
      key: PRNG key passed to ``stepper.init`` (stochastic steppers).
      dt: time per step (flow time of the save points).

    Returns:
      `Trajectory` with ``ts [T]``, ``final = stepper.value(last state)`` and `Stats`
      (``nonfinite_t``: first save time at which the iterate or an observable was non-finite;
      ``inner_ok``: every step's inner solver converged).

    Raises:
      ValueError: before tracing, for a stepper that is not a `Stepper`, a bad save spec,
        ``args`` and ``batches`` together, batches without a leading ``steps`` axis, ``dt <= 0``.
    """
    if not isinstance(stepper, Stepper):
        raise ValueError(
            f"stepper: expected a flowax.dynamics.Stepper(init, step, ...), got "
            f"{type(stepper).__name__}"
        )
    steps = _checks.check_positive_int("steps", steps)
    _checks.check_finite_tree("x0", x0)
    ks = _save.save_steps(steps, n_save, spacing, save_steps)
    observables = _checks.check_observables(observables)
    _checks.check_positive("dt", dt)
    if args is not None and batches is not None:
        raise ValueError("batches: pass either args (every step) or batches (per step), not both")
    if batches is not None:
        sizes = {np.shape(b)[:1] for b in jax.tree_util.tree_leaves(batches)}
        if sizes != {(steps,)}:
            raise ValueError(
                f"batches: expected every leaf to have a leading axis of size steps = {steps}, "
                f"got leading shapes {sorted(sizes)}"
            )
    if key is not None:
        _checks.check_key("key", key)
    ks = tuple(int(k) for k in ks)
    return _run(stepper, x0, ks, steps, observables, args, batches, key, jnp.asarray(dt))


@eqx.filter_jit
def _run(stepper, x0, ks, steps, observables, args, batches, key, dt):
    """The compiled part of `iterate`, cached on the stepper's and observables' functions (by
    identity), the save steps and the shapes of the arrays: a second call compiles nothing."""
    ks = np.asarray(ks)
    state0 = _init(stepper, x0, key)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(stepper.value(state0)), float)
    dt = jnp.asarray(dt, dtype)
    inner = stepper.inner_ok or (lambda s: jnp.array(True))

    def record(k, s):
        t = k * dt
        x = stepper.value(s)
        vals = {name: fn(t, x) for name, fn in observables.items()}
        return vals, tree_all_finite(x) & tree_all_finite(vals)

    def one(carry, k):
        s, ok = carry
        a = args if batches is None else jax.tree_util.tree_map(lambda b: b[k], batches)
        s = stepper.step(s, a)
        return (s, ok & inner(s)), None

    # Segments between saves: equal lengths scan exactly; unequal ones scan the longest
    # length with a cond on an *unbatched* predicate, which stays a real branch under vmap.
    save_zero = ks[0] == 0
    rest = ks[1:] if save_zero else ks
    seg = np.diff(np.concatenate([[0], rest]))
    starts = np.concatenate([[0], rest[:-1]]) if rest.size else np.zeros(0, np.int64)
    uniform = seg.size == 0 or np.all(seg == seg[0])
    width = int(seg.max()) if seg.size else 0

    def segment(carry, xs):
        start, length = xs

        def inner_step(c, j):
            if uniform:
                return one(c, start + j)
            return jax.lax.cond(j < length, lambda c: one(c, start + j)[0], lambda c: c, c), None

        carry, _ = jax.lax.scan(inner_step, carry, jnp.arange(width))
        s, _ = carry
        return carry, record((start + length).astype(dtype), s)

    carry = (state0, jnp.array(True))
    if rest.size:
        carry, saved = jax.lax.scan(segment, carry, (jnp.asarray(starts), jnp.asarray(seg)))
    tail = steps - int(ks[-1])
    if tail:
        carry, _ = jax.lax.scan(one, carry, jnp.arange(int(ks[-1]), steps))
    final, inner_ok = carry
    parts = []
    if save_zero:
        parts.append(
            jax.tree_util.tree_map(lambda a: a[None], record(jnp.zeros((), dtype), state0))
        )
    if rest.size:
        parts.append(saved)
    vals, finite = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *parts)
    ts = jnp.asarray(ks, dtype) * dt
    nonfinite_t = first_nonfinite_time(ts, finite, jnp.ones_like(finite))
    n = jnp.asarray(steps, jnp.int32)
    stats = Stats(
        num_steps=n,
        num_accepted=n,
        num_rejected=jnp.zeros((), jnp.int32),
        status=status_code(nonfinite_t, jnp.asarray(STATUS_OK), inner_ok),
        t_final=steps * dt,
        nonfinite_t=nonfinite_t,
        inner_ok=inner_ok,
    )
    return Trajectory(ts, vals, stepper.value(final), stats)
