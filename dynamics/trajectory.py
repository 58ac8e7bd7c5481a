"""Results of every flowax run: `Trajectory` and its `Stats`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

#: Codes of `Stats.status`.
STATUS_OK, STATUS_MAX_STEPS, STATUS_NONFINITE, STATUS_SOLVER_FAILURE = 0, 1, 2, 3
STATUS_NAMES = {0: "ok", 1: "max_steps_reached", 2: "nonfinite", 3: "solver_failure"}


class Stats(NamedTuple):
    """What happened during a run; every field is an array (batched under `vmap` / `sweep`).

    Attributes:
      num_steps: int32, solver steps taken (accepted + rejected; ``steps`` for discrete loops).
      num_accepted: int32, accepted steps.
      num_rejected: int32, rejected steps.
      status: int32, 0 ok, 1 max_steps reached, 2 non-finite values, 3 other solver failure.
      t_final: the time the run reached (``t1`` when it succeeded).
      nonfinite_t: the first save time at which the state or an observable was non-finite
        (``inf`` if never). Observables saved after a failure are ``inf`` or ``nan``, and this
        field says from when.
    """

    num_steps: jax.Array
    num_accepted: jax.Array
    num_rejected: jax.Array
    status: jax.Array
    t_final: jax.Array
    nonfinite_t: jax.Array

    @property
    def ok(self) -> jax.Array:
        """Boolean (array): the run finished without failure or non-finite values."""
        return self.status == STATUS_OK


class Trajectory(NamedTuple):
    """A run of a flow or of a discrete loop.

    Attributes:
      ts: ``[T]`` save times (flow time; for discrete loops see the loop's docstring).
      values: ``{name: [T, ...]}`` each observable stacked over the save times.
      final: the state (pytree) at the end of the run.
      stats: `Stats`.

    Under ``jax.vmap`` or `flowax.dynamics.sweep` every field gains a leading grid axis.
    """

    ts: jax.Array
    values: dict[str, jax.Array]
    final: PyTree
    stats: Stats


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


def raise_if_failed(traj: Trajectory) -> Trajectory:
    """The opt-in hard failure: raises ``RuntimeError`` (on the host) if any run did not succeed.

    Works on a single trajectory or on a sweep of them; returns ``traj`` unchanged otherwise.
    """
    status = np.asarray(traj.stats.status)
    if np.any(status != STATUS_OK):
        bad = np.argwhere(np.atleast_1d(status) != STATUS_OK).ravel()
        codes = sorted({STATUS_NAMES[int(c)] for c in np.atleast_1d(status)[bad]})
        t_bad = np.atleast_1d(np.asarray(traj.stats.nonfinite_t))[bad]
        raise RuntimeError(
            f"{len(bad)} run(s) failed ({', '.join(codes)}); first failing grid indices "
            f"{bad[:8].tolist()}, first non-finite times {t_bad[:8].tolist()}"
        )
    return traj
