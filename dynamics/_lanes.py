"""Solving lanes: one diffrax solve for ``B`` independent problems stacked on a leading axis.

`solve_lanes` is the only place flowax calls ``diffrax.diffeqsolve``. A lone `integrate` is a
solve of one lane; under `fused_lanes` (what ``sweep(batching="fused")`` turns on) the lanes of
an enclosing ``jax.vmap`` become the lanes of one solve, through a ``custom_vmap`` rule.

Invariants of a fused solve (``B > 1``):

* One PID controller; its error norm is the maximum over *live* lanes of each lane's RMS error,
  so every live lane meets its own tolerance on every accepted step and the control flow stays
  scalar.
* A lane is dead when its state is non-finite: from ``t0`` (set aside: solved from zeros with a
  zero field) or from the step at which it turned non-finite (its error counts as 0, so it
  cannot make the controller reject and shrink the shared step; its field is 0 from then on, so
  its state stays frozen non-finite). Its own ``nonfinite_t`` and status report it.
* Every lane whose fused result is not ok (dead, or the shared solve stopped at ``max_steps``
  because one lane turned stiff) is solved again on its own, inside the same compiled program,
  so its reported result -- status, ``t_final``, values -- is the one of its own solve: lanes
  fail alone, exactly as under ``batching="map"``. Ok lanes keep their fused answer, which
  equals their own solve to the solver tolerance.
* Each lane keeps its own horizon (time normalized to ``s in [0, 1]`` per lane), its own
  arguments and closed-over values (hoisted by `_hoist`), and for SDEs its own Brownian path
  (a function of the lane's key only), so fused SDE lanes reproduce their own solves.

Reverse-mode differentiation through a fused solve is not supported (``custom_vmap``); plain
``jax.vmap`` of `integrate` (diffrax's own batching) and a lone solve support it.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.extend import core as jex_core

from ..models import _checks
from ._trajectory import (
    STATUS_MAX_STEPS,
    STATUS_OK,
    STATUS_SOLVER_FAILURE,
    Stats,
    first_nonfinite_time,
    status_code,
    tree_all_finite,
)

PyTree = Any

_FUSE = contextvars.ContextVar("flowax_fuse_lanes", default=False)


@contextlib.contextmanager
def fused_lanes(enabled: bool = True):
    """Within this context, `integrate` under ``jax.vmap`` solves all lanes as one ODE.

    See the module docstring for what a fused solve guarantees: each ok lane's answer equals its
    own solve up to the solver tolerance (not bitwise), failing lanes are re-solved alone, and
    reverse-mode differentiation is not supported. `flowax.dynamics.sweep` enables this for
    ``batching="fused"``. The switch is read when `integrate` is traced: a function already
    compiled (``jax.jit``-cached) outside the context stays unfused inside it.
    """
    token = _FUSE.set(_checks.check_bool("enabled", enabled))
    try:
        yield
    finally:
        _FUSE.reset(token)


def fusing() -> bool:
    return _FUSE.get()


class Opts(NamedTuple):
    """Static options of a solve (validated by `integrate`)."""

    solver: diffrax.AbstractSolver
    adaptive: bool
    rtol: float
    atol: float
    dt0: float | None
    max_steps: int
    sde: bool = False
    steady_state: float | None = None  # RMS norm of the field below which a lane stops


class _DiagonalNoise(diffrax.ControlTerm):
    """``g(t, y) * dW`` elementwise over a pytree (diagonal noise)."""

    def prod(self, vf, control):
        return jax.tree_util.tree_map(lambda a, b: a * b, vf, control)


class _LaneBrownian(diffrax.AbstractBrownianPath):
    """Independent Brownian motions per lane, each a function of its lane's own key only, so a
    fused solve draws for every lane the noise that its own solve would draw."""

    keys: jax.Array  # [B, ...] raw key data
    shape: Any = eqx.field(static=True)  # one lane's state structure
    levy_area: type = diffrax.BrownianIncrement

    @property
    def t0(self):
        return -jnp.inf

    @property
    def t1(self):
        return jnp.inf

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        def one(k):
            path = diffrax.UnsafeBrownianPath(self.shape, jax.random.wrap_key_data(k))
            return path.evaluate(t0, t1, left, use_levy)

        return jax.vmap(one)(self.keys)


class Extras(NamedTuple):
    """Per-lane data that the field and the observables read."""

    t0: jax.Array
    t1: jax.Array
    args: PyTree
    field_consts: tuple = ()
    obs_consts: tuple = ()
    key: PyTree = None  # raw key data of the lane's Brownian motion (SDEs)
    diffusion_consts: tuple = ()
    stop_consts: tuple = ()


def _lane_norm(err: PyTree, fused: bool) -> jax.Array:
    """Max over lanes (leading axis) of each lane's RMS norm.

    In a fused solve a lane whose error is non-finite counts as 0: it is dying,
    and must not shrink the shared step. Without it a non-finite error rejects the step (the
    controller retries smaller), as diffrax does for a lone solve.
    """
    leaves = jax.tree_util.tree_leaves(err)
    b = leaves[0].shape[0]
    sq = sum(jnp.sum(jnp.reshape(jnp.abs(x) ** 2, (b, -1)), axis=1) for x in leaves)
    size = sum(int(np.prod(x.shape[1:])) for x in leaves)
    per_lane = jnp.sqrt(sq / max(size, 1))
    bad = 0.0 if fused else jnp.inf
    return jnp.max(jnp.where(jnp.isfinite(per_lane), per_lane, bad))


class _FreezeAtStepStart(diffrax.AbstractAdaptiveSolver, diffrax.AbstractWrappedSolver):
    """Wraps a solver of the state ``(y, clock, frozen)``: before each step, sets ``frozen`` to
    the lanes settled at the step's start (``settled(s, state, args) -> [B] bool``), so every
    stage of the step sees the same frozen lanes. When the set changes, the step is flagged as
    after a jump (an FSAL solver then re-evaluates its first stage with the new field)."""

    solver: diffrax.AbstractSolver
    settled: Any

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y, clock, frozen = y0
        now = self.settled(t0, y0, args)
        changed = jnp.any(now != (frozen > 0.5))
        y0 = (y, clock, jnp.where(now, 1.0, 0.0).astype(frozen.dtype))
        return self.solver.step(terms, t0, t1, y0, args, solver_state, made_jump | changed)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)


def _rms(tree: PyTree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    sq = sum(jnp.sum(jnp.abs(x) ** 2) for x in leaves)
    return jnp.sqrt(sq / max(sum(x.size for x in leaves), 1))


def _bcast(mask, v):
    return jnp.reshape(mask, (-1,) + (1,) * (v.ndim - 1))


def solve_lanes(
    field_fn, obs_fns, y0, extras: Extras, s_save, opts: Opts, diffusion_fn=None, stop_fn=None
):
    """Solves ``B`` lanes (leading axis of ``y0`` and ``extras``) as one diffrax solve.

    ``field_fn(t, y, e)``, ``diffusion_fn(t, y, e)``, ``stop_fn(t, y, e)`` and
    ``obs_fns[k](t, y, e)`` act on one lane.
    Returns a dict of arrays, each with the lane axis first.
    """
    leaf = jax.tree_util.tree_leaves(y0)[0]
    b = leaf.shape[0]
    fused = b > 1

    # a lane whose state, field or diffusion is non-finite at t0 is dead from the start: it is
    # frozen (its field is 0, so the solve ends at once) and reports nonfinite_t = t0
    def start_ok(y, e):
        ok = tree_all_finite(y) & tree_all_finite(field_fn(e.t0, y, e))
        if opts.sde:
            ok = ok & tree_all_finite(diffusion_fn(e.t0, y, e))
        return ok

    dead0 = ~jax.vmap(start_ok)(y0, extras)
    y0 = jax.tree_util.tree_map(lambda v: jnp.where(_bcast(dead0, v), 0, v), y0)

    steady = opts.steady_state is not None or stop_fn is not None

    def settled(t, y, e, out):
        """The lane may stop: its field's RMS norm is below ``steady_state`` and ``stop_if``."""
        ok = jnp.ones((), bool)
        if opts.steady_state is not None:
            ok = ok & (_rms(out) < opts.steady_state)
        if stop_fn is not None:
            ok = ok & jnp.reshape(jnp.asarray(stop_fn(t, y, e), bool), ())
        return ok

    def scaled(fn, power):
        def lane(s, y, e, dead):
            span = e.t1 - e.t0
            if fused:  # a lane that turned non-finite is frozen
                dead = dead | ~tree_all_finite(y)
            out = fn(e.t0 + s * span, y, e)
            return jax.tree_util.tree_map(lambda v: jnp.where(dead, 0, span**power * v), out)

        return lambda s, ys, es: jax.vmap(lane, in_axes=(None, 0, 0, 0))(s, ys, es, dead0)

    # Fused lanes with an early exit: the state is (y, clock, frozen) per lane. At the start of
    # each step `_FreezeAtStepStart` sets ``frozen`` for every lane that has settled (or died);
    # over the step a frozen lane's field is 0 and its clock stands still (``dc/ds = 1`` while
    # it runs), so the field is continuous within every step (no rejected steps at the switch),
    # a frozen lane adds no error (it costs the shared solve no steps), and its clock is the
    # time it stopped. The event ends the solve once every lane is frozen. A lone lane needs
    # none of this: the event ends its solve at the first step end where it has settled.
    freeze = steady and fused

    def lane_settled(s, y, e):
        t = e.t0 + s * (e.t1 - e.t0)
        return settled(t, y, e, field_fn(t, y, e)) | (fused & ~tree_all_finite(y))

    def settled_lanes(s, state, es):
        return dead0 | jax.vmap(lane_settled, in_axes=(None, 0, 0))(s, state[0], es)

    def frozen_field(s, state, es):
        ys, _, frozen = state

        def lane(y, e, stop):
            span = e.t1 - e.t0
            out = field_fn(e.t0 + s * span, y, e)
            return jax.tree_util.tree_map(lambda v: jnp.where(stop, 0, span * v), out)

        stop = frozen > 0.5
        dy = jax.vmap(lane)(ys, es, stop)
        return dy, jnp.where(stop, 0.0, 1.0).astype(s.dtype), jnp.zeros_like(frozen)

    def all_settled(s, state, es, **kwargs):
        if freeze:
            return jnp.all(state[2] > 0.5)
        return jnp.all(dead0 | jax.vmap(lane_settled, in_axes=(None, 0, 0))(s, state, es))

    def lane_save(s, y, e):
        t = e.t0 + s * (e.t1 - e.t0)
        vals = {k: fn(t, y, e) for k, fn in obs_fns.items()}
        return vals, tree_all_finite(y) & tree_all_finite(vals)

    def save_fn(s, ys, es):
        if freeze:
            ys = ys[0]
        return jax.vmap(lane_save, in_axes=(None, 0, 0))(s, ys, es)

    dtype = jnp.result_type(leaf.dtype, float)
    s_save = jnp.asarray(s_save, dtype)
    span = (extras.t1 - extras.t0).astype(dtype)
    if opts.dt0 is None:
        dt0 = None
    else:
        dt0 = jnp.min(opts.dt0 / span) if opts.adaptive else (opts.dt0 / span[0])
    if opts.adaptive:
        controller = diffrax.PIDController(
            rtol=opts.rtol,
            atol=opts.atol,
            norm=lambda err: _lane_norm(err[0] if freeze else err, fused),  # not the clocks
        )
    else:
        controller = diffrax.ConstantStepSize()
    saveat = diffrax.SaveAt(
        subs=[diffrax.SubSaveAt(ts=s_save, fn=save_fn), diffrax.SubSaveAt(t1=True)]
    )
    terms = diffrax.ODETerm(frozen_field if freeze else scaled(field_fn, 1.0))
    adjoint = diffrax.RecursiveCheckpointAdjoint()
    solver = opts.solver
    y_start = y0
    if freeze:
        y_start = (y0, jnp.zeros((b,), dtype), jnp.zeros((b,), dtype))
        solver = _FreezeAtStepStart(solver, settled_lanes)
    event = diffrax.Event(all_settled) if steady else None
    if opts.sde:
        lane_shape = jax.tree_util.tree_map(
            lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), y0
        )
        bm = _LaneBrownian(extras.key, lane_shape)
        terms = diffrax.MultiTerm(terms, _DiagonalNoise(scaled(diffusion_fn, 0.5), bm))
        adjoint = diffrax.ForwardMode()
    sol = diffrax.diffeqsolve(
        terms,
        solver,
        t0=jnp.zeros((), dtype),
        t1=jnp.ones((), dtype),
        dt0=dt0,
        y0=y_start,
        args=extras,
        saveat=saveat,
        event=event,
        stepsize_controller=controller,
        max_steps=opts.max_steps,
        throw=False,
        adjoint=adjoint,
    )
    (vals, finite), y_final = sol.ys[0], jax.tree_util.tree_map(lambda v: v[0], sol.ys[1])
    s_reached = sol.ts[1][0]
    ts = extras.t0[:, None] + s_save[None, :] * span[:, None]  # [B, T]
    s_stop = s_reached
    if freeze:
        y_final, s_stop, _ = y_final
    if steady:
        # Saves after the solve ended (every lane settled) hold the observables of the frozen
        # final state at the later save times: what continuing the frozen flow would give.
        frozen = (y_final, s_stop, None) if freeze else y_final
        held = jax.vmap(save_fn, in_axes=(0, None, None))(s_save, frozen, extras)
        after = s_save > s_reached
        vals, finite = jax.tree_util.tree_map(
            lambda v, h: jnp.where(_bcast(after, v), h, v), (vals, finite), held
        )
        s_reached = jnp.ones((), dtype)
    finite = jnp.swapaxes(finite, 0, 1)  # [B, T]
    vals = jax.tree_util.tree_map(lambda v: jnp.swapaxes(v, 0, 1), vals)
    reached = jnp.broadcast_to(s_save <= s_reached, ts.shape)
    nonfinite_t = jax.vmap(first_nonfinite_time)(ts, finite, reached)
    nonfinite_t = jnp.where(dead0, extras.t0, nonfinite_t)
    y_final = jax.tree_util.tree_map(lambda v: jnp.where(_bcast(dead0, v), jnp.nan, v), y_final)
    vals = jax.tree_util.tree_map(lambda v: jnp.where(_bcast(dead0, v), jnp.nan, v), vals)
    result = sol.result
    code = jnp.where(
        (result == diffrax.RESULTS.successful) | (result == diffrax.RESULTS.event_occurred),
        STATUS_OK,
        jnp.where(
            result == diffrax.RESULTS.max_steps_reached, STATUS_MAX_STEPS, STATUS_SOLVER_FAILURE
        ),
    )
    n = lambda k: jnp.broadcast_to(jnp.asarray(sol.stats[k], jnp.int32), (b,))  # noqa: E731
    stats = Stats(
        num_steps=n("num_steps"),
        num_accepted=n("num_accepted_steps"),
        num_rejected=n("num_rejected_steps"),
        status=status_code(nonfinite_t, code, jnp.ones(b, bool)),
        t_final=jnp.where(dead0, extras.t0, extras.t0 + s_stop * span),
        nonfinite_t=nonfinite_t,
        inner_ok=jnp.ones(b, bool),
    )
    return {"ts": ts, "values": vals, "final": y_final, "stats": stats}


def expand(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)


def squeeze(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def _hoist(fn, *example):
    """Closure conversion: ``fn`` as a function of ``(consts, *args)`` and its closed-over consts.

    Unlike ``jax.closure_convert`` this also hoists tracers of an enclosing ``vmap``, which
    ``custom_vmap`` must see as explicit (possibly batched) arguments: a field that closes over a
    lane's data (its scale, its dataset) then gets each lane's own value in the fused solve.
    """
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*example)
    out_tree = jax.tree_util.tree_structure(out_shape)
    jaxpr = closed.jaxpr

    def converted(consts, *args):
        out = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(jaxpr, consts))(
            *jax.tree_util.tree_leaves(args)
        )
        return jax.tree_util.tree_unflatten(out_tree, out)

    return converted, tuple(closed.consts)


def _redo_failed(out, solve_one, y0, e, b):
    """Re-solves alone every lane whose fused result is not ok (a real branch per lane)."""
    bad = out["stats"].status != STATUS_OK

    def body(i, out):
        def redo(out):
            take = lambda v: v[i]  # noqa: E731
            one = solve_one(jax.tree_util.tree_map(take, y0), jax.tree_util.tree_map(take, e))
            return jax.tree_util.tree_map(lambda o, v: o.at[i].set(v), out, one)

        return jax.lax.cond(bad[i], redo, lambda o: o, out)

    return jax.lax.fori_loop(0, b, body, out)


def fused_solve(field, observables, y0, t0, t1, s_save, args, opts, diffusion, key, stop_if=None):
    """`solve_lanes` behind a custom batching rule that fuses the lanes of an enclosing vmap."""
    t_example = jnp.asarray(t0, jnp.result_type(t0, float))
    field_c, field_consts = _hoist(field, t_example, y0, args)
    diff_c, diff_consts = (None, ())
    if diffusion is not None:
        diff_c, diff_consts = _hoist(diffusion, t_example, y0, args)
    stop_c, stop_consts = (None, ())
    if stop_if is not None:
        stop_c, stop_consts = _hoist(stop_if, t_example, y0, args)
    names = tuple(observables)
    obs_c, obs_consts = [], []
    for k in names:
        c, consts = _hoist(observables[k], t_example, y0)
        obs_c.append(c)
        obs_consts.append(consts)

    def field_fn(t, y, e):
        return field_c(e.field_consts, t, y, e.args)

    def diffusion_fn(t, y, e):
        return diff_c(e.diffusion_consts, t, y, e.args)

    stop_fn = None
    if stop_if is not None:

        def stop_fn(t, y, e):
            return stop_c(e.stop_consts, t, y, e.args)

    obs_fns = {
        k: (lambda t, y, e, j=j: obs_c[j](e.obs_consts[j], t, y)) for j, k in enumerate(names)
    }

    def single(y0, e, s_save):
        return squeeze(
            solve_lanes(
                field_fn, obs_fns, expand(y0), expand(e), s_save, opts, diffusion_fn, stop_fn
            )
        )

    run = custom_batching.custom_vmap(single)

    @run.def_vmap
    def _rule(axis_size, in_batched, y0, e, s_save):
        yb, eb, sb = in_batched
        horizon_batched = any(jax.tree_util.tree_leaves((eb.t0, eb.t1)))
        if any(jax.tree_util.tree_leaves(sb)) or (horizon_batched and not opts.adaptive):
            # Per-lane save grids or per-lane fixed steps cannot share one solve.
            in_axes = jax.tree_util.tree_map(lambda b: 0 if b else None, (yb, eb, sb))
            out = jax.vmap(single, in_axes=in_axes)(y0, e, s_save)
        else:

            def bcast(x, b):
                x = jnp.asarray(x)
                return x if b else jnp.broadcast_to(x, (axis_size,) + x.shape)

            y0 = jax.tree_util.tree_map(bcast, y0, yb)
            e = jax.tree_util.tree_map(bcast, e, eb)
            out = solve_lanes(field_fn, obs_fns, y0, e, s_save, opts, diffusion_fn, stop_fn)
            if opts.adaptive:  # fixed steps: each lane already took its own solve's steps
                out = _redo_failed(out, lambda y, ee: single(y, ee, s_save), y0, e, axis_size)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    key_data = None if key is None else jax.random.key_data(key)
    e = Extras(t0, t1, args, field_consts, tuple(obs_consts), key_data, diff_consts, stop_consts)
    return run(y0, e, s_save)


def solve(field, observables, y0, t0, t1, s_save, args, opts, diffusion, key, stop_if=None):
    """One lane (or the fused lanes of an enclosing vmap under `fused_lanes`)."""
    if fusing():
        return fused_solve(
            field, observables, y0, t0, t1, s_save, args, opts, diffusion, key, stop_if
        )
    obs_fns = {k: (lambda t, y, e, fn=fn: fn(t, y)) for k, fn in observables.items()}
    field_fn = lambda t, y, e: field(t, y, e.args)  # noqa: E731
    diffusion_fn = None if diffusion is None else (lambda t, y, e: diffusion(t, y, e.args))
    key_data = None if key is None else jax.random.key_data(key)
    stop_fn = None if stop_if is None else (lambda t, y, e: stop_if(t, y, e.args))
    e = expand(Extras(t0, t1, args, key=key_data))
    return squeeze(
        solve_lanes(field_fn, obs_fns, expand(y0), e, s_save, opts, diffusion_fn, stop_fn)
    )
