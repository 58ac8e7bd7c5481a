"""Sweeps: one pure function over a grid, as ``vmap``, in chunks, sharded over the devices."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..models import _checks
from ._lanes import fused_lanes
from ._progress import Progress

PyTree = Any


def product_grid(**axes: Sequence | np.ndarray) -> dict[str, jax.Array]:
    """The Cartesian product of named 1-D axes, flattened: ``{name: [prod(len(axis))]}``.

    Example:
      >>> g = product_grid(scale=jnp.logspace(-3, 1, 32), seed=jnp.arange(4))
      >>> g["scale"].shape, g["seed"].shape
      ((128,), (128,))
    """
    if not axes:
        raise ValueError("axes: expected at least one named axis, got none")
    arrays = []
    for name, a in axes.items():
        a = np.asarray(a)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"{name}: expected a non-empty 1-D axis, got shape {a.shape}")
        arrays.append(a)
    mesh = np.meshgrid(*arrays, indexing="ij")
    return {name: jnp.asarray(m.ravel()) for name, m in zip(axes, mesh, strict=True)}


def _grid_size(grid) -> int:
    leaves = jax.tree_util.tree_flatten_with_path(grid)[0]
    if not leaves:
        raise ValueError(
            f"grid: expected a pytree of arrays with a leading grid axis, got {grid!r}"
        )
    sizes = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"grid{jax.tree_util.keystr(path)}: expected an array with a leading grid axis, "
                "got a scalar"
            )
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"grid: expected every leaf to have the same leading size, got {sizes}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError("grid: expected at least one grid point, got an empty grid")
    return n


BATCHING = ("auto", "fused", "vmap", "map")


# Compiled programs are cached on (fn, devices, batching): calling sweep again with the same
# function object compiles nothing; a closure rebuilt per call (a lambda in a loop) recompiles.
@functools.lru_cache(maxsize=16)
def _compiled(fn: Callable, devices: tuple, batching: str):
    mesh = Mesh(np.array(devices), ("grid",))
    sharding = NamedSharding(mesh, P("grid"))
    if batching == "map":
        # Each device runs its own lanes one after the other (scalar control flow per lane).
        body = jax.shard_map(
            lambda g: jax.lax.map(fn, g),
            mesh=mesh,
            in_specs=P("grid"),
            out_specs=P("grid"),
            check_vma=False,  # diffrax loops mix device-varying and invariant carries
        )
    else:

        def body(g):
            with fused_lanes(batching == "fused"):
                return jax.vmap(fn)(g)

    return jax.jit(body, in_shardings=(sharding,), out_shardings=sharding), sharding


def sweep(
    fn: Callable[[PyTree], PyTree],
    grid: PyTree,
    *,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
    batching: str = "auto",
) -> PyTree:
    """Maps ``fn`` over the leading axis of ``grid``: ``jax.vmap(fn)(grid)``, chunked and sharded.

    The grid is cut into chunks of ``chunk_size`` points (bounding memory); each chunk is one call
    of one compiled program (compiled once: the last chunk is padded by repeating its last point,
    and the padding is dropped), with the grid axis sharded over ``devices`` by a
    ``NamedSharding`` on a one-axis ``Mesh``. The answer does not depend on the number of devices.

    How the lanes of a chunk are computed (``batching``). Every mode gives each lane the answer of
    its own solve (to the solver tolerance) and the same failure report: a lane that blows up or
    stalls fails alone, with its own ``status``, ``t_final`` and ``nonfinite_t``, and the other
    lanes are unaffected. ``"auto"``, the default, is ``"map"`` when the devices are CPUs and
    ``"fused"`` otherwise; the one difference between them is reverse-mode differentiation,
    which ``"fused"`` does not support (use ``"map"`` or ``"vmap"`` to differentiate a sweep).

    * ``"fused"``: ``vmap``, and every adaptive `flowax.dynamics.integrate` inside ``fn``
      solves the chunk's lanes as one ODE with one step-size controller (see `fused_lanes` and
      ``flowax.dynamics._lanes``): each live lane meets its own tolerance on every step, a lane
      that turns non-finite is frozen so it cannot stall the others, and every lane that did not
      succeed is solved again alone in the same program, so its report is its own. Results of ok
      lanes match their own solves to the tolerance and depend (within it) on which lanes share
      a chunk; the chunk takes as many steps as its hardest lane: put lanes of similar
      difficulty in one chunk (grids sorted by scale are). Lanes share a solve only when they
      share the normalized save grid: with per-lane horizons ``t1``, save with ``n_save`` /
      ``spacing`` (positions in ``[t0, t1]``), not with ``ts`` computed from each lane's ``t1``.
      Best where lanes are cheap to batch (accelerators, large states). Fixed-step solves and
      discrete loops are plain ``vmap``.
    * ``"map"``: each device runs its lanes one after the other (``shard_map`` of ``lax.map``):
      every lane is its own solve, as in a Python loop, but in one compiled program on every
      device at once. Best on CPUs, where XLA runs a batch of small matrix products one after
      the other anyway (``benchmarks/bench_sweep.py`` measures fused against map).
    * ``"vmap"``: plain ``jax.vmap`` (diffrax's own batching: every lane runs as many steps as
      the slowest, with batched control flow). Supports reverse-mode gradients through solves.

    Args:
      fn: a pure function of one grid point (a pytree of arrays without the grid axis).
      grid: pytree of arrays with a common leading axis (e.g. from `product_grid`).
      chunk_size: grid points per compiled call; default all of them. Rounded up to a multiple
        of the number of devices.
      devices: devices to shard over; default ``jax.devices()``.
      progress: show a progress bar (tqdm, else a counter) when there is more than one chunk.
      batching: ``"auto"``, ``"fused"``, ``"map"`` or ``"vmap"`` (see above).

    Returns:
      ``fn``'s output pytree with a leading grid axis.

    Example:
      >>> def run(scale):
      ...     return gradient_descent(lambda p: 0.5 * scale * p**2, jnp.ones(()), lr=0.1, steps=10)
      >>> out = sweep(run, jnp.array([1.0, 2.0, 3.0]), progress=False)
      >>> out.values["loss"].shape, out.stats.ok.tolist()
      ((3, 11), [True, True, True])

    Raises:
      ValueError: an empty grid, leaves of different leading sizes, a non-positive chunk size,
        an unknown ``batching``.
    """
    _checks.check_callable("fn", fn)
    _checks.check_option("batching", batching, BATCHING)
    n = _grid_size(grid)
    if devices is not None and (
        isinstance(devices, (str, bytes))
        or not isinstance(devices, (list, tuple))
        or not all(isinstance(d, jax.Device) for d in devices)
    ):
        raise ValueError(
            f"devices: expected a sequence of jax.Device (e.g. jax.devices('cpu')), got {devices!r}"
        )
    devices = tuple(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices: expected at least one device, got none")
    if chunk_size is not None:
        chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
    nd = len(devices)
    if batching == "auto":
        batching = "map" if all(d.platform == "cpu" for d in devices) else "fused"
    chunk = n if chunk_size is None else min(chunk_size, n)
    chunk = -(-chunk // nd) * nd
    compiled, sharding = _compiled(fn, devices, batching)
    grid = jax.tree_util.tree_map(jnp.asarray, grid)
    starts = range(0, n, chunk)
    # Deal the lanes of a chunk to the devices like cards (device d gets lanes d, d + nd, ...),
    # so that a grid sorted by difficulty (e.g. by scale) loads every device alike.
    deal = np.arange(chunk).reshape(chunk // nd, nd).T.ravel()
    undeal = np.argsort(deal)
    bar = Progress(n, desc="sweep", enabled=progress and len(starts) > 1, unit="pt")
    outs = []
    try:
        for start in starts:
            stop = min(start + chunk, n)
            idx = np.minimum(start + deal, n - 1)
            part = jax.tree_util.tree_map(lambda x, idx=idx: x[idx], grid)
            out = compiled(jax.device_put(part, sharding))
            out = jax.tree_util.tree_map(lambda x, k=stop - start: x[undeal[:k]], out)
            outs.append(out)
            jax.block_until_ready(out)
            bar.update(stop - start)
    finally:
        bar.close()
    if len(outs) == 1:
        return outs[0]
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)
