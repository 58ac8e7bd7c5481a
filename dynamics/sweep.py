"""Sweeps: one pure function over a grid, as ``vmap``, in chunks, sharded over the devices."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import _checks
from .integrate import fused_lanes

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
        raise ValueError(f"grid: expected a pytree of arrays with a leading grid axis, got {grid!r}")
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


@functools.lru_cache(maxsize=64)
def _compiled(fn: Callable, devices: tuple, fuse: bool):
    mesh = Mesh(np.array(devices), ("grid",))
    sharding = NamedSharding(mesh, P("grid"))

    def batched(g):
        with fused_lanes(fuse):
            return jax.vmap(fn)(g)

    return jax.jit(batched, in_shardings=(sharding,), out_shardings=sharding), sharding


class _Progress:
    """tqdm if it is installed, else a one-line counter on stderr."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        self.enabled = enabled
        self.total, self.done, self.desc = total, 0, desc
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="pt", file=sys.stderr)
            except ImportError:
                pass

    def update(self, n: int):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            print(f"\r{self.desc}: {self.done}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)


def sweep(
    fn: Callable[[PyTree], PyTree],
    grid: PyTree,
    *,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
    fuse: bool = True,
) -> PyTree:
    """Maps ``fn`` over the leading axis of ``grid``: ``jax.vmap(fn)(grid)``, chunked and sharded.

    The grid is cut into chunks of ``chunk_size`` points (bounding memory); each chunk is one call
    of one compiled program (compiled once: the last chunk is padded by repeating its last point,
    and the padding is dropped), with the grid axis sharded over ``devices`` by a
    ``NamedSharding`` on a one-axis ``Mesh``. The answer does not depend on the number of devices.

    With ``fuse=True`` (default) every `flowax.dynamics.integrate` inside ``fn`` solves the
    chunk's lanes as one ODE with a shared step-size controller (see `fused_lanes`): each lane
    meets its own tolerance, and the chunk costs about as many steps as its hardest lane instead
    of the sum over lanes (a Python loop) or a slow batched control flow (plain ``vmap``). Results
    then match separate solves to the solver tolerance and depend (within it) on which lanes
    share a chunk; put lanes of similar difficulty together, or set ``fuse=False`` for diffrax's
    own batching. Fixed-step solves and discrete loops are unaffected.

    Args:
      fn: a pure function of one grid point (a pytree of arrays without the grid axis).
      grid: pytree of arrays with a common leading axis (e.g. from `product_grid`).
      chunk_size: grid points per compiled call; default all of them. Rounded up to a multiple
        of the number of devices.
      devices: devices to shard over; default ``jax.devices()``.
      progress: show a progress bar (tqdm, else a counter) when there is more than one chunk.
      fuse: fuse the lanes of adaptive ODE solves (see above).

    Returns:
      ``fn``'s output pytree with a leading grid axis.

    Raises:
      ValueError: an empty grid, leaves of different leading sizes, a non-positive chunk size.
    """
    _checks.check_callable("fn", fn)
    n = _grid_size(grid)
    devices = tuple(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices: expected at least one device, got none")
    if chunk_size is not None:
        _checks.check_positive_int("chunk_size", chunk_size)
    nd = len(devices)
    chunk = n if chunk_size is None else min(chunk_size, n)
    chunk = -(-chunk // nd) * nd
    compiled, sharding = _compiled(fn, devices, bool(fuse))
    grid = jax.tree_util.tree_map(jnp.asarray, grid)
    starts = range(0, n, chunk)
    bar = _Progress(n, progress and len(starts) > 1, "sweep")
    outs = []
    try:
        for start in starts:
            stop = min(start + chunk, n)
            idx = np.minimum(np.arange(start, start + chunk), n - 1)
            part = jax.tree_util.tree_map(lambda x, idx=idx: x[idx], grid)
            out = compiled(jax.device_put(part, sharding))
            if stop - start < chunk:
                out = jax.tree_util.tree_map(lambda x, k=stop - start: x[:k], out)
            outs.append(out)
            jax.block_until_ready(out)
            bar.update(stop - start)
    finally:
        bar.close()
    if len(outs) == 1:
        return outs[0]
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)


