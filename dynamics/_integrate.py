"""The one integrator of continuous-time flows, built on diffrax.

Every flow in flowax is a vector field ``field(t, y, args) -> dy/dt`` over a pytree ``y`` (the
``diffrax.ODETerm`` contract) handed to `integrate`. Internally the horizon ``[t0, t1]`` is mapped
onto ``s in [0, 1]`` (``t = t0 + s (t1 - t0)``), an exact change of variables, so that runs with
different horizons can share one solve (see `flowax.dynamics._lanes` for fused lanes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks
from . import _lanes, _save
from ._trajectory import Trajectory

PyTree = Any
VectorField = Callable[[jax.Array, PyTree, Any], PyTree]

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


def _get_solver(solver):
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if isinstance(solver, str) and solver in SOLVERS:
        return SOLVERS[solver]()
    raise ValueError(
        f"solver: unknown solver {solver!r}; expected a diffrax solver instance or one of "
        f"{sorted(SOLVERS)}"
    )


def check_field(field, t, y0, args, name="field"):
    """Raises unless ``field(t, y0, args)`` traces to a pytree shaped like ``y0``."""
    out = _checks.trace_fn(name, field, t, y0, args, call=f"{name}(t, y, args)")
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


def _save_positions(t0, t1, ts, n_save, spacing):
    """Normalized save times ``s in [0, 1]`` (``t = t0 + s (t1 - t0)``)."""
    if ts is None:
        return _save.positions(n_save, spacing)
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
    field: VectorField,
    y0: PyTree,
    *,
    t1: float | jax.Array,
    t0: float | jax.Array = 0.0,
    ts: jax.Array | None = None,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    args: PyTree = None,
    observables: dict[str, Callable] | None = None,
    solver: str | diffrax.AbstractSolver | None = None,
    adaptive: bool | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0: float | None = None,
    max_steps: int = 16_384,
    diffusion: VectorField | None = None,
    key: jax.Array | None = None,
    steady_state: float | None = None,
    stop_if: Callable[[jax.Array, PyTree, Any], jax.Array] | None = None,
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
      n_save: number of save times when ``ts`` is None (default 101, ``t0`` and ``t1`` included).
      spacing: ``"linear"`` (``t0 .. t1``) or ``"log"`` (``t0``, then
        ``t0 + (t1 - t0) 10^[-5 .. 0]``).
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
      steady_state: early exit: a tolerance ``tol > 0`` on the RMS norm of the field. The run
        ends once ``rms(field(t, y, args)) < tol`` (from then on ``y`` is frozen: its field is
        taken as 0, a diffrax ``Event`` ends the solve): ``stats.t_final`` is the time it
        stopped, ``final`` the state there, and the observables saved after it are those of the
        frozen state (held at their final values, evaluated at the later save times). Under a
        fused `sweep` each lane freezes on its own and a frozen lane adds no error, so it costs
        the shared solve no steps (the step where it freezes may be rejected a few times: its
        field jumps to 0); the solve ends when every lane has settled. A saddle point is a
        steady state too: a lane that starts at, or passes slowly near, a saddle (small
        initializations, saddle-to-saddle plateaus) stops there; add ``stop_if``. Default
        None: run to ``t1``. ODEs only.
      stop_if: ``stop_if(t, y, args) -> bool``, a further condition for the early exit
        (e.g. ``lambda t, p, a: loss(p) < 1e-9``): the run ends at the first step where it is
        true (and the field is below ``steady_state``, when that is given too), with the same
        reports and held observables as ``steady_state``.

    Returns:
      `Trajectory` with ``ts [T]``, ``values {name: [T, ...]}``, ``final`` (the state at ``t1``,
      or where the solver stopped) and `Stats`. Nothing raises inside the compiled program: a
      failure is ``stats.status != 0`` with ``stats.nonfinite_t`` / ``stats.t_final`` saying when;
      `flowax.dynamics.raise_if_failed` is the opt-in hard failure.

    Raises:
      ValueError: before tracing, for an unknown solver or spacing, ``t1 <= t0``, save times
        outside ``[t0, t1]``, non-positive tolerances (``steady_state`` included) or steps, a
        fixed-step run without ``dt0``,
        an adaptive run with a solver that has no error estimate, or a field whose output does not
        match ``y0``.

    Examples:
      >>> traj = integrate(lambda t, y, a: -y, jnp.ones(3), t1=1.0,
      ...                  observables={"y0": lambda t, y: y[0]})
      >>> print(f"{traj.values['y0'][-1]:.6f}")   # exp(-1)
      0.367879
    """
    _checks.check_callable("field", field)
    observables = _checks.check_observables(observables)
    _checks.check_finite_tree("y0", y0)
    _checks.check_interval(t0, t1)
    s_save = _save_positions(t0, t1, ts, n_save, spacing)
    if diffusion is not None:
        _checks.check_callable("diffusion", diffusion)
        _checks.check_key("key", key)
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
    max_steps = _checks.check_positive_int("max_steps", max_steps)
    if dt0 is not None:
        _checks.check_positive("dt0", dt0)
    if steady_state is not None:
        _checks.check_positive("steady_state", steady_state)
        if _checks.concrete(steady_state) is None:
            raise ValueError(
                "steady_state: expected a concrete tolerance (a Python float), got a traced value"
            )
    if stop_if is not None:
        _checks.check_callable("stop_if", stop_if)
    for name, value in (("steady_state", steady_state), ("stop_if", stop_if)):
        if value is not None and diffusion is not None:
            raise ValueError(f"{name}: early exit is for ODEs (an SDE does not settle); pass None")
    if adaptive and not isinstance(solver_obj, diffrax.AbstractAdaptiveSolver):
        raise ValueError(
            f"solver: {type(solver_obj).__name__} has no error estimate for adaptive stepping; "
            "pass adaptive=False and a fixed step dt0, or an adaptive solver such as 'tsit5'"
        )
    if not adaptive and dt0 is None:
        raise ValueError("dt0: a fixed-step run (adaptive=False) needs a step dt0 > 0, got None")
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(y0), float)
    opts = _lanes.Opts(
        solver_obj,
        bool(adaptive),
        float(rtol),
        float(atol),
        dt0,
        max_steps,
        diffusion is not None,
        None if steady_state is None else float(steady_state),
    )
    out = _solve(
        field,
        observables,
        y0,
        jnp.asarray(t0, dtype),
        jnp.asarray(t1, dtype),
        jnp.asarray(s_save),
        args,
        opts,
        diffusion,
        key,
        stop_if,
        _lanes.fusing(),
    )
    return Trajectory(out["ts"], out["values"], out["final"], out["stats"])


@eqx.filter_jit
def _solve(field, observables, y0, t0, t1, s_save, args, opts, diffusion, key, stop_if, fuse):
    """The compiled part of `integrate`, cached on its callables (by identity), its static options
    and the shapes of its arrays: a second call with the same field and shapes compiles nothing.
    ``fuse`` (whether `fused_lanes` is on) is part of the cache key. The checks of the callables'
    outputs run while tracing, so before anything is compiled."""
    del fuse  # read again by _lanes.solve; here it only keys the cache
    check_field(field, t0, y0, args)
    if diffusion is not None:
        check_field(diffusion, t0, y0, args, name="diffusion")
    if stop_if is not None:
        out = _checks.trace_fn("stop_if", stop_if, t0, y0, args, call="stop_if(t, y, args)")
        if not (hasattr(out, "shape") and out.size == 1 and out.dtype == jnp.bool_):
            raise ValueError(
                f"stop_if: expected stop_if(t, y, args) to return one boolean, got {out!r}"
            )
    return _lanes.solve(field, observables, y0, t0, t1, s_save, args, opts, diffusion, key, stop_if)
