"""The one integrator of continuous-time flows, built on diffrax.

Every flow in flowax is a vector field ``field(t, y, args) -> dy/dt`` over a pytree ``y`` (the
``diffrax.ODETerm`` contract) handed to `integrate`. Internally the horizon ``[t0, t1]`` is mapped
onto ``s in [0, 1]`` (``t = t0 + s (t1 - t0)``), an exact change of variables, so that runs with
different horizons can share one solve.

Lanes. A batch of ``B`` independent problems can be solved as one ODE on the stacked state
``[B, ...]`` with one step-size controller whose error norm is the *maximum over lanes* of each
lane's RMS error, so every lane meets its own tolerance on every step and the control flow stays
scalar. This is what `flowax.dynamics.sweep` does (see `fused_lanes`): under ``jax.vmap`` a
diffrax solve otherwise runs every lane for as many steps as the slowest one *and* turns the
solver's branches into selects that compute both sides, which costs far more per step than the
lanes' arithmetic for small problems. As in diffrax, a step whose error is
non-finite is rejected and retried smaller; a lane that starts from non-finite values is set
aside (zero field) and reported non-finite from ``t0`` on, so it cannot stall the others.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.extend import core as jex_core

from . import _checks
from .trajectory import (
    STATUS_MAX_STEPS,
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_SOLVER_FAILURE,
    Stats,
    Trajectory,
    first_nonfinite_time,
    tree_all_finite,
)

PyTree = Any

SOLVERS: dict[str, type] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "implicit_euler": diffrax.ImplicitEuler,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno5": diffrax.Kvaerno5,
}
SPACINGS = ("linear", "log")
LOG_DECADES = 5.0  # spacing="log" saves at t0 + (t1 - t0) * 10**linspace(-5, 0, n_save)

_FUSE = contextvars.ContextVar("flowax_fuse_lanes", default=False)


@contextlib.contextmanager
def fused_lanes(enabled: bool = True):
    """Within this context, `integrate` under ``jax.vmap`` solves all lanes as one ODE.

    The fused solve shares one adaptive step-size controller (error norm: max over lanes of each
    lane's RMS error), so each lane's answer equals its own solve up to the solver tolerance, not
    bitwise. Reverse-mode differentiation through a fused solve is not supported (it is through
    the unfused one). `flowax.dynamics.sweep` enables this by default.
    """
    token = _FUSE.set(enabled)
    try:
        yield
    finally:
        _FUSE.reset(token)


class _Opts(NamedTuple):
    solver: Any
    adaptive: bool
    rtol: float
    atol: float
    dt0: float | None
    max_steps: int
    sde: bool = False


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


class _Extras(NamedTuple):
    """Per-lane data that the field and the observables read."""

    t0: jax.Array
    t1: jax.Array
    args: PyTree
    field_consts: list
    obs_consts: dict
    key: PyTree = None  # raw key data of the lane's Brownian motion (SDEs)
    diffusion_consts: list = []
    s_save: Any = None  # normalized save times (fused path only)


def _get_solver(solver):
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if isinstance(solver, str) and solver in SOLVERS:
        return SOLVERS[solver]()
    raise ValueError(
        f"solver: unknown solver {solver!r}; expected a diffrax solver instance or one of "
        f"{sorted(SOLVERS)}"
    )


def _lane_max_norm(err: PyTree) -> jax.Array:
    """Max over lanes (leading axis) of each lane's RMS norm."""
    leaves = jax.tree_util.tree_leaves(err)
    b = leaves[0].shape[0]
    sq = sum(jnp.sum(jnp.reshape(jnp.abs(x) ** 2, (b, -1)), axis=1) for x in leaves)
    size = sum(int(np.prod(x.shape[1:])) for x in leaves)
    per_lane = jnp.sqrt(sq / max(size, 1))
    # A non-finite error rejects the step (the controller then shrinks it), as diffrax does.
    per_lane = jnp.where(jnp.isfinite(per_lane), per_lane, jnp.inf)
    return jnp.max(per_lane)


def _solve_lanes(field_fn, obs_fns, y0, extras: _Extras, s_save, opts: _Opts, diffusion_fn=None):
    """Solves ``B`` lanes (leading axis of ``y0`` and ``extras``) as one diffrax solve.

    ``field_fn(t, y, e)`` and ``obs_fns[k](t, y, e)`` act on one lane. Returns a dict of arrays,
    each with the lane axis first.
    """

    # Lanes that start non-finite are dead: they are solved from zeros with a zero field (so they
    # cannot stall the shared controller) and reported as non-finite from t0 on.
    dead = ~jax.vmap(tree_all_finite)(y0)
    y0 = jax.tree_util.tree_map(
        lambda v: jnp.where(jnp.reshape(dead, (-1,) + (1,) * (v.ndim - 1)), 0, v), y0
    )

    def lane_field(s, y, e, dead):
        span = e.t1 - e.t0
        dy = field_fn(e.t0 + s * span, y, e)
        return jax.tree_util.tree_map(lambda v: jnp.where(dead, 0, span * v), dy)

    def vector_field(s, ys, es):
        return jax.vmap(lane_field, in_axes=(None, 0, 0, 0))(s, ys, es, dead)

    def lane_noise(s, y, e, dead):
        span = e.t1 - e.t0
        g = diffusion_fn(e.t0 + s * span, y, e)
        return jax.tree_util.tree_map(lambda v: jnp.where(dead, 0, jnp.sqrt(span) * v), g)

    def noise_field(s, ys, es):
        return jax.vmap(lane_noise, in_axes=(None, 0, 0, 0))(s, ys, es, dead)

    def lane_save(s, y, e):
        t = e.t0 + s * (e.t1 - e.t0)
        vals = {k: fn(t, y, e) for k, fn in obs_fns.items()}
        return vals, tree_all_finite(y) & tree_all_finite(vals)

    def save_fn(s, ys, es):
        return jax.vmap(lane_save, in_axes=(None, 0, 0))(s, ys, es)

    leaf = jax.tree_util.tree_leaves(y0)[0]
    dtype = jnp.result_type(leaf.dtype, float)
    s_save = jnp.asarray(s_save, dtype)
    span = (extras.t1 - extras.t0).astype(dtype)
    if opts.dt0 is None:
        dt0 = None
    else:
        dt0 = jnp.min(opts.dt0 / span) if opts.adaptive else (opts.dt0 / span[0])
    if opts.adaptive:
        controller = diffrax.PIDController(rtol=opts.rtol, atol=opts.atol, norm=_lane_max_norm)
    else:
        controller = diffrax.ConstantStepSize()
    saveat = diffrax.SaveAt(
        subs=[diffrax.SubSaveAt(ts=s_save, fn=save_fn), diffrax.SubSaveAt(t1=True)]
    )
    terms = diffrax.ODETerm(vector_field)
    adjoint = diffrax.RecursiveCheckpointAdjoint()
    if opts.sde:
        lane_shape = jax.tree_util.tree_map(
            lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), y0
        )
        bm = _LaneBrownian(extras.key, lane_shape)
        terms = diffrax.MultiTerm(terms, _DiagonalNoise(noise_field, bm))
        adjoint = diffrax.ForwardMode()
    sol = diffrax.diffeqsolve(
        terms,
        opts.solver,
        t0=jnp.zeros((), dtype),
        t1=jnp.ones((), dtype),
        dt0=dt0,
        y0=y0,
        args=extras,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=opts.max_steps,
        throw=False,
        adjoint=adjoint,
    )
    (vals, finite), y_final = sol.ys[0], jax.tree_util.tree_map(lambda v: v[0], sol.ys[1])
    s_reached = sol.ts[1][0]
    b = leaf.shape[0]
    ts = extras.t0[:, None] + s_save[None, :] * span[:, None]  # [B, T]
    finite = jnp.swapaxes(finite, 0, 1)  # [B, T]
    vals = jax.tree_util.tree_map(lambda v: jnp.swapaxes(v, 0, 1), vals)
    reached = jnp.broadcast_to(s_save <= s_reached, ts.shape)
    nonfinite_t = jax.vmap(first_nonfinite_time)(ts, finite, reached)
    t_final = extras.t0 + s_reached * span
    nonfinite_t = jnp.where(dead, extras.t0, nonfinite_t)
    nan_dead = lambda v: jnp.where(  # noqa: E731
        jnp.reshape(dead, (-1,) + (1,) * (v.ndim - 1)), jnp.nan, v
    )
    y_final = jax.tree_util.tree_map(nan_dead, y_final)
    vals = jax.tree_util.tree_map(nan_dead, vals)
    result = sol.result
    code = jnp.where(
        result == diffrax.RESULTS.successful,
        STATUS_OK,
        jnp.where(
            result == diffrax.RESULTS.max_steps_reached, STATUS_MAX_STEPS, STATUS_SOLVER_FAILURE
        ),
    )
    status = jnp.where(jnp.isfinite(nonfinite_t), STATUS_NONFINITE, code).astype(jnp.int32)
    n = lambda k: jnp.broadcast_to(jnp.asarray(sol.stats[k], jnp.int32), (b,))  # noqa: E731
    stats = Stats(
        num_steps=n("num_steps"),
        num_accepted=n("num_accepted_steps"),
        num_rejected=n("num_rejected_steps"),
        status=status,
        t_final=t_final,
        nonfinite_t=nonfinite_t,
    )
    return {"ts": ts, "values": vals, "final": y_final, "stats": stats}


def _expand(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)


def _squeeze(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def _hoist(fn, *example):
    """Closure conversion: ``fn`` as a function of ``(consts, *args)`` and its closed-over consts.

    Unlike ``jax.closure_convert`` this also hoists tracers of an enclosing ``vmap``, which
    `jax.custom_batching.custom_vmap` needs to see as explicit (possibly batched) arguments.
    """
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*example)
    out_tree = jax.tree_util.tree_structure(out_shape)
    jaxpr = closed.jaxpr

    def converted(consts, *args):
        out = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(jaxpr, consts))(
            *jax.tree_util.tree_leaves(args)
        )
        return jax.tree_util.tree_unflatten(out_tree, out)

    return converted, list(closed.consts)


def _fused_solve(field, observables, y0, t0, t1, s_save, args, opts, diffusion, key):
    """`_solve_lanes` behind a custom batching rule that fuses the lanes of an enclosing vmap."""
    t_example = jnp.asarray(t0, jnp.result_type(t0, float))
    field_c, field_consts = _hoist(field, t_example, y0, args)
    diff_c, diff_consts = (None, [])
    if diffusion is not None:
        diff_c, diff_consts = _hoist(diffusion, t_example, y0, args)
    obs_c = {}
    obs_consts = {}
    for k, fn in observables.items():
        obs_c[k], obs_consts[k] = _hoist(fn, t_example, y0)

    def field_fn(t, y, e):
        return field_c(e.field_consts, t, y, e.args)

    def diffusion_fn(t, y, e):
        return diff_c(e.diffusion_consts, t, y, e.args)

    obs_fns = {k: (lambda t, y, e, k=k: obs_c[k](e.obs_consts[k], t, y)) for k in obs_c}

    def single(y0, e):
        ex = _expand(e)
        return _squeeze(
            _solve_lanes(field_fn, obs_fns, _expand(y0), ex, e.s_save, opts, diffusion_fn)
        )

    run = custom_batching.custom_vmap(single)

    @run.def_vmap
    def _rule(axis_size, in_batched, y0, e):
        yb, eb = in_batched
        horizon_batched = any(jax.tree_util.tree_leaves((eb.t0, eb.t1)))
        save_batched = any(jax.tree_util.tree_leaves(eb.s_save))
        if save_batched or (horizon_batched and not opts.adaptive):
            # Per-lane save grids or per-lane fixed steps cannot share one solve.
            in_axes = jax.tree_util.tree_map(lambda b: 0 if b else None, (yb, eb))
            out = jax.vmap(single, in_axes=in_axes)(y0, e)
        else:

            def bcast(x, b):
                x = jnp.asarray(x)
                return x if b else jnp.broadcast_to(x, (axis_size,) + x.shape)

            y0 = jax.tree_util.tree_map(bcast, y0, yb)
            s_save = e.s_save
            e = jax.tree_util.tree_map(bcast, e._replace(s_save=None), eb._replace(s_save=None))
            out = _solve_lanes(field_fn, obs_fns, y0, e, s_save, opts, diffusion_fn)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    key_data = None if key is None else jax.random.key_data(key)
    e = _Extras(t0, t1, args, field_consts, obs_consts, key_data, diff_consts, s_save)
    return run(y0, e)


def _check_field(field, t, y0, args, name="field"):
    out = jax.eval_shape(field, t, y0, args)
    want = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), y0
    )
    if jax.tree_util.tree_structure(out) != jax.tree_util.tree_structure(want):
        raise ValueError(
            f"{name}: expected {name}(t, y, args) to return a pytree of structure "
            f"{jax.tree_util.tree_structure(want)}, got {jax.tree_util.tree_structure(out)}"
        )
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(want), strict=True):
        if a.shape != b.shape:
            raise ValueError(f"{name}: expected an output leaf of shape {b.shape}, got {a.shape}")


def save_grid(t0, t1, ts, n_save: int, spacing: str):
    """Normalized save times ``s in [0, 1]`` (``t = t0 + s (t1 - t0)``) and whether they depend on
    ``t0, t1``."""
    if ts is None:
        _checks.check_positive_int("n_save", n_save)
        if spacing not in SPACINGS:
            raise ValueError(f"spacing: expected one of {SPACINGS}, got {spacing!r}")
        if spacing == "linear":
            return np.linspace(0.0, 1.0, n_save)
        return np.logspace(-LOG_DECADES, 0.0, n_save)
    shape = np.shape(ts)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"ts: expected a non-empty 1-D array of save times, got shape {shape}")
    c, a, b = _checks.concrete(ts), _checks.concrete(t0), _checks.concrete(t1)
    if c is not None:
        if not np.isfinite(c).all() or np.any(np.diff(c) < 0):
            raise ValueError("ts: expected finite, non-decreasing save times")
        if (
            a is not None
            and b is not None
            and (c[0] < a - 1e-12 * abs(a) or c[-1] > b + 1e-12 * abs(b))
        ):
            raise ValueError(
                f"ts: expected save times within [t0, t1] = [{float(a)}, {float(b)}], "
                f"got [{float(c[0])}, {float(c[-1])}]"
            )
    return (jnp.asarray(ts) - t0) / (t1 - t0)


def integrate(
    field: Callable[[jax.Array, PyTree, Any], PyTree],
    y0: PyTree,
    *,
    t1: float | jax.Array,
    t0: float | jax.Array = 0.0,
    ts: jax.Array | None = None,
    n_save: int = 101,
    spacing: str = "linear",
    args: PyTree = None,
    observables: dict[str, Callable] | None = None,
    solver: str | diffrax.AbstractSolver | None = None,
    adaptive: bool | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0: float | None = None,
    max_steps: int = 16_384,
    diffusion: Callable[[jax.Array, PyTree, Any], PyTree] | None = None,
    key: jax.Array | None = None,
) -> Trajectory:
    r"""Integrates ``dy/dt = field(t, y, args)`` from ``t0`` to ``t1`` with diffrax.

    With ``diffusion`` it integrates the Ito SDE ``dy = field dt + diffusion(t, y, args) * dW``
    with diagonal noise (an independent Brownian motion per entry of ``y``, drawn from ``key``),
    by fixed steps ``dt0`` (``solver="euler"`` is Euler-Maruyama, the default for SDEs).

    Observables are evaluated inside the compiled program at the save times; the full state is
    kept only at the end (pass an observable ``lambda t, y: y`` to keep it along the way).

    Args:
      field: ``field(t, y, args) -> dy/dt``, a pytree like ``y`` (diffrax's ``ODETerm`` contract).
      y0: initial state, any pytree of float arrays.
      t1: final time (may be traced; under `sweep` each lane may have its own horizon).
      t0: initial time, ``t0 < t1``.
      ts: ``[T]`` save times in ``[t0, t1]``. Default: ``n_save`` times spaced by ``spacing``.
      n_save: number of save times when ``ts`` is None.
      spacing: ``"linear"`` (``t0 .. t1``) or ``"log"`` (``t0 + (t1 - t0) 10^[-5 .. 0]``).
      args: passed to ``field``.
      observables: ``{name: fn(t, y) -> array}``, evaluated at the save times.
      solver: a name in ``SOLVERS`` or a diffrax solver instance (stiff problems: "kvaerno5");
        default "tsit5" for ODEs, "euler" for SDEs.
      adaptive: PID step-size control (default for ODEs); ``False`` takes fixed steps ``dt0``
        (default for SDEs, the only choice there).
      rtol, atol: tolerances of the adaptive controller.
      dt0: initial (adaptive) or fixed step; adaptive default is diffrax's automatic choice.
      max_steps: maximum number of solver steps.
      diffusion: ``g(t, y, args)``, a pytree like ``y``: the SDE's diagonal noise coefficient.
      key: PRNG key of the Brownian motion (required with ``diffusion``). Under `sweep` each lane
        draws from its own key, so a fused solve reproduces every lane's own solve.

    Returns:
      `Trajectory` with ``ts [T]``, ``values {name: [T, ...]}``, ``final`` (the state at ``t1``,
      or where the solver stopped) and `Stats`. Nothing raises inside the compiled program: a
      failure is ``stats.status != 0`` with ``stats.nonfinite_t`` / ``stats.t_final`` saying when;
      `flowax.dynamics.raise_if_failed` is the opt-in hard failure.

    Raises:
      ValueError: before tracing, for an unknown solver or spacing, ``t1 <= t0``, save times
        outside ``[t0, t1]``, non-positive tolerances or steps, a fixed-step run without ``dt0``,
        an adaptive run with a solver that has no error estimate, or a field whose output does not
        match ``y0``.

    Example:
      >>> traj = integrate(lambda t, y, a: -y, jnp.ones(3), t1=1.0,
      ...                  observables={"y0": lambda t, y: y[0]})
      >>> traj.values["y0"][-1]   # exp(-1)
    """
    _checks.check_callable("field", field)
    observables = _checks.check_observables(observables)
    if not jax.tree_util.tree_leaves(y0):
        raise ValueError(f"y0: expected a non-empty pytree of arrays, got {y0!r}")
    _checks.check_interval(t0, t1)
    s_save = save_grid(t0, t1, ts, n_save, spacing)
    if diffusion is not None:
        _checks.check_callable("diffusion", diffusion)
        if key is None:
            raise ValueError("key: an SDE (diffusion given) needs a PRNG key, got None")
        if adaptive:
            raise ValueError(
                "adaptive: SDEs are integrated with fixed steps here; pass adaptive=False "
                "(or leave it unset) and a step dt0"
            )
        adaptive = False
    elif adaptive is None:
        adaptive = True
    if solver is None:
        solver = "tsit5" if diffusion is None else "euler"
    solver_obj = _get_solver(solver)
    _checks.check_positive("rtol", rtol)
    _checks.check_positive("atol", atol)
    _checks.check_positive_int("max_steps", max_steps)
    if dt0 is not None:
        _checks.check_positive("dt0", dt0)
    if adaptive and not isinstance(solver_obj, diffrax.AbstractAdaptiveSolver):
        raise ValueError(
            f"solver: {type(solver_obj).__name__} has no error estimate for adaptive stepping; "
            "pass adaptive=False and a fixed step dt0, or an adaptive solver such as 'tsit5'"
        )
    if not adaptive and dt0 is None:
        raise ValueError("dt0: a fixed-step run (adaptive=False) needs a step dt0 > 0, got None")
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(y0), float)
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    _check_field(field, t0, y0, args)
    if diffusion is not None:
        _check_field(diffusion, t0, y0, args, name="diffusion")
    opts = _Opts(
        solver_obj,
        bool(adaptive),
        float(rtol),
        float(atol),
        dt0,
        int(max_steps),
        diffusion is not None,
    )

    if _FUSE.get():
        out = _fused_solve(field, observables, y0, t0, t1, s_save, args, opts, diffusion, key)
    else:
        obs_fns = {k: (lambda t, y, e, fn=fn: fn(t, y)) for k, fn in observables.items()}
        field_fn = lambda t, y, e: field(t, y, e.args)  # noqa: E731
        diffusion_fn = None if diffusion is None else (lambda t, y, e: diffusion(t, y, e.args))
        key_data = None if key is None else jax.random.key_data(key)
        e = _expand(_Extras(t0, t1, args, [], {}, key_data))
        out = _squeeze(_solve_lanes(field_fn, obs_fns, _expand(y0), e, s_save, opts, diffusion_fn))
    return Trajectory(out["ts"], out["values"], out["final"], out["stats"])
