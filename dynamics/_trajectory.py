"""Results of every flowax run: `Trajectory` and its `Stats`; the opt-in hard failure."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

#: Codes of `Stats.status`, with what each means and what to try.
STATUS_OK, STATUS_MAX_STEPS, STATUS_NONFINITE, STATUS_SOLVER_FAILURE, STATUS_INNER = 0, 1, 2, 3, 4
STATUS_NAMES = {
    STATUS_OK: "ok",
    STATUS_MAX_STEPS: "max_steps_reached",
    STATUS_NONFINITE: "nonfinite",
    STATUS_SOLVER_FAILURE: "solver_failure",
    STATUS_INNER: "inner_solver_not_converged",
}
_HINTS = {
    STATUS_MAX_STEPS: "the solver stopped before t1 (stats.t_final): increase max_steps, or use a "
    "stiff solver (solver='kvaerno5') if the step size collapsed",
    STATUS_NONFINITE: "a state or observable became non-finite (from stats.nonfinite_t on): "
    "lower the step or the initialization scale",
    STATUS_SOLVER_FAILURE: "diffrax reported a failure other than max_steps (e.g. an implicit "
    "solver's root find did not converge)",
    STATUS_INNER: "an inner solver (e.g. ott-jax's Sinkhorn) did not converge in some step: "
    "raise its max_iterations or lam, or loosen its threshold",
}


class Stats(NamedTuple):
    """What happened during a run; every field is an array (batched under `vmap` / `sweep`).

    Attributes:
      num_steps: int32, solver steps taken (accepted + rejected; ``steps`` for discrete loops).
      num_accepted: int32, accepted steps.
      num_rejected: int32, rejected steps.
      status: int32, a key of ``STATUS_NAMES``: 0 ok, 1 max_steps reached, 2 non-finite values,
        3 other solver failure, 4 an inner solver (e.g. Sinkhorn) did not converge.
      t_final: the time the run reached (``t1`` when it succeeded).
      nonfinite_t: the first save time at which the state or an observable was non-finite
        (``inf`` if never). Observables saved after a failure are ``inf`` or ``nan``, and this
        field says from when.
      inner_ok: bool, every inner solve of every step converged (always true for runs without
        inner solvers).
    """

    num_steps: jax.Array
    num_accepted: jax.Array
    num_rejected: jax.Array
    status: jax.Array
    t_final: jax.Array
    nonfinite_t: jax.Array
    inner_ok: jax.Array

    @property
    def ok(self) -> jax.Array:
        """Boolean (array): the run finished without failure or non-finite values."""
        return self.status == STATUS_OK


class Trajectory(NamedTuple):
    """A run of a flow or of a discrete loop.

    Attributes:
      ts: ``[T]`` save times (flow time; for discrete loops ``k dt``).
      values: ``{name: [T, ...]}`` each observable stacked over the save times.
      final: the state (pytree) at the end of the run.
      stats: `Stats`.

    Under ``jax.vmap`` or `flowax.dynamics.sweep` every field gains a leading grid axis.
    """

    ts: jax.Array
    values: dict[str, jax.Array]
    final: PyTree
    stats: Stats

    @property
    def ok(self) -> jax.Array:
        """Boolean (array): ``stats.ok``."""
        return self.stats.ok


def tree_all_finite(tree: PyTree) -> jax.Array:
    """True iff every entry of every leaf of ``tree`` is finite (a scalar bool array)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def first_nonfinite_time(ts: jax.Array, finite: jax.Array, reached: jax.Array) -> jax.Array:
    """``min {ts[i] : reached[i] and not finite[i]}``, ``inf`` if the set is empty."""
    inf = jnp.asarray(jnp.inf, dtype=ts.dtype)
    return jnp.min(jnp.where(reached & ~finite, ts, inf), initial=inf)


def status_code(nonfinite_t, solver_code, inner_ok) -> jax.Array:
    """The one precedence of failures: non-finite, then the solver's own code, then inner."""
    code = jnp.where(
        solver_code == STATUS_OK, jnp.where(inner_ok, STATUS_OK, STATUS_INNER), solver_code
    )
    return jnp.where(jnp.isfinite(nonfinite_t), STATUS_NONFINITE, code).astype(jnp.int32)


def _converged(result: Any) -> np.ndarray | None:
    conv = getattr(result, "converged", None)
    if conv is None:
        return None
    leaves = jax.tree_util.tree_leaves(conv)
    return np.all(np.stack([np.asarray(c, bool) for c in leaves]), axis=0)


def raise_if_failed(result: Any) -> Any:
    """The opt-in hard failure: raises ``RuntimeError`` on the host if a run did not succeed.

    Accepts a `Trajectory` or its `Stats` (single or swept: it names the failing grid indices,
    their status and what to try), any result with a ``converged`` field (`TransportResult`,
    `BarycenterResult`, ott-jax outputs; a tuple of flags counts as all of them), or a
    ``(value, result)`` pair as returned by `sinkhorn_divergence`. Returns ``result`` unchanged
    otherwise.

    Examples:
      >>> from flowax.dynamics import gradient_descent
      >>> bad = gradient_descent(lambda p: 0.5 * p**2, jnp.ones(()), lr=3.0, steps=600)
      >>> int(bad.stats.status), STATUS_NAMES[int(bad.stats.status)]
      (2, 'nonfinite')
      >>> raise_if_failed(bad)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      RuntimeError: 1 of 1 run(s) failed; ...

    Raises:
      RuntimeError: the run (or some lanes of a sweep) failed.
      ValueError: ``result`` is none of the above.
    """
    if isinstance(result, tuple) and not hasattr(result, "_fields") and len(result) == 2:
        raise_if_failed(result[1])
        return result
    stats = result.stats if isinstance(result, Trajectory) else result
    if isinstance(stats, Stats):
        status = np.atleast_1d(np.asarray(stats.status))
        bad = np.argwhere(status != STATUS_OK).ravel()
        if bad.size:
            codes = sorted({int(c) for c in status[bad]})
            t_bad = np.atleast_1d(np.asarray(stats.nonfinite_t))[bad]
            t_fin = np.atleast_1d(np.asarray(stats.t_final))[bad]
            hints = "; ".join(f"{STATUS_NAMES[c]}: {_HINTS[c]}" for c in codes)
            raise RuntimeError(
                f"{bad.size} of {status.size} run(s) failed; first failing grid indices "
                f"{bad[:8].tolist()}, status {status[bad][:8].tolist()}, t_final "
                f"{t_fin[:8].tolist()}, first non-finite times {t_bad[:8].tolist()}. {hints}"
            )
        return result
    conv = _converged(result)
    if conv is None:
        raise ValueError(
            "result: expected a Trajectory, Stats, a result with a `converged` field or a "
            f"(value, result) pair, got {type(result).__name__}"
        )
    conv = np.atleast_1d(conv)
    if not conv.all():
        bad = np.argwhere(~conv).ravel()
        raise RuntimeError(
            f"{type(result).__name__}: {bad.size} of {conv.size} solve(s) did not converge "
            f"(indices {bad[:8].tolist()}): raise max_iterations or lam, or loosen threshold"
        )
    return result
