"""Sweeps: one pure function over a grid, as ``vmap``, in chunks, sharded over the devices."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..models import _checks
from . import _checkpoint as ckpt
from . import _multiprocess as mp
from ._lanes import fused_lanes
from ._progress import Progress

PyTree = Any


def product_grid(**axes: Sequence | np.ndarray) -> dict[str, jax.Array]:
    """The Cartesian product of named 1-D axes, flattened: ``{name: [prod(len(axis))]}``.

    Examples:
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


class SweepPreempted(RuntimeError):
    """A checkpointed sweep stopped at a chunk boundary after a pre-emption signal (SIGTERM).

    Every chunk before the boundary is committed: rerun the same call to resume.
    """


log = logging.getLogger("flowax.sweep")


def _shard_bounds(shard, n: int) -> tuple[int, int, tuple[int, int]]:
    if shard is None:
        return 0, n, (0, 1)
    if (
        not isinstance(shard, (tuple, list))
        or len(shard) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard)
    ):
        raise ValueError(f"shard: expected a pair of integers (i, n), got {shard!r}")
    i, k = int(shard[0]), int(shard[1])
    if k < 1 or not 0 <= i < k:
        raise ValueError(f"shard: expected (i, n) with n >= 1 and 0 <= i < n, got {shard!r}")
    if k > n:
        raise ValueError(f"shard: expected n <= the grid size {n}, got n = {k}")
    return i * n // k, (i + 1) * n // k, (i, k)


def sweep(
    fn: Callable[[PyTree], PyTree],
    grid: PyTree,
    *,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
    batching: str = "auto",
    shard: tuple[int, int] | None = None,
    checkpoint: str | os.PathLike | None = None,
    keep_in_memory: bool = True,
    fingerprint: str | None = None,
) -> PyTree:
    """Maps ``fn`` over the leading axis of ``grid``: ``jax.vmap(fn)(grid)``, chunked and sharded.

    The grid is cut into chunks of ``chunk_size`` points (bounding memory); each chunk is one call
    of one compiled program (compiled once: a chunk is padded to a multiple of the number of
    devices, and the last chunk to the full size, by repeating its last point; the padding is
    dropped), with the grid axis sharded over ``devices`` by a ``NamedSharding`` on a one-axis
    ``Mesh``. The answer does not depend on the number of devices.

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
      the other anyway (``benchmarks/bench_sweep.py`` measures fused against map). Call
      `use_cpu_cores` first to have one CPU device per core.
    * ``"vmap"``: plain ``jax.vmap`` (diffrax's own batching: every lane runs as many steps as
      the slowest, with batched control flow). Supports reverse-mode gradients through solves.

    Several processes (``jax.distributed``). When the user's launcher has called
    ``jax.distributed.initialize()`` and every process runs the same script with the same grid,
    ``jax.devices()`` spans every process: each chunk is computed on all of them at once and
    every process gets the whole result (each chunk is gathered with
    ``multihost_utils.process_allgather``). For results too large to gather, checkpoint with
    ``keep_in_memory=False``. flowax never initializes the distributed runtime itself.

    Shards (job arrays, task queues). ``shard=(i, n)`` computes only the i-th of n contiguous
    slices of the grid (points ``[i*N//n, (i+1)*N//n)`` of ``N``); run each shard with its own
    ``checkpoint=`` directory and assemble them with `merge_shards`. A failed shard is re-run.

    Checkpoints. With ``checkpoint=path`` each finished chunk is committed to ``path`` atomically
    (see ``flowax.dynamics._checkpoint``) beside a manifest (grid hash, shard, chunk size, number
    of chunks, batching, output tree structure, shapes and dtypes, flowax and JAX versions, and
    the function's ``fingerprint``). A rerun with the same arguments loads the committed chunks
    (each checked against its SHA-256: a torn or corrupted file is recomputed, never loaded) and
    computes only the rest, so its answer equals an uninterrupted run's bit for bit; a manifest
    that differs raises. A finished sweep reruns without computing (or load it with
    `load_sweep`). Under ``jax.distributed``, process 0 writes the gathered chunks (the path
    need only be on its file system) and tells the others which chunks remain. A SIGTERM
    (pre-emption) stops every process at the same chunk boundary (JAX's pre-emption sync point)
    with `SweepPreempted`; rerun to resume.

    Args:
      fn: a pure function of one grid point (a pytree of arrays without the grid axis).
      grid: pytree of arrays with a common leading axis (e.g. from `product_grid`).
      chunk_size: grid points per compiled call; default all of them (of the shard).
        A multiple of the number of devices wastes no padding.
      devices: devices to shard over; default ``jax.devices()`` (every process's, under
        ``jax.distributed``).
      progress: show a progress bar (tqdm, else a counter) when there is more than one chunk.
      batching: ``"auto"``, ``"fused"``, ``"map"`` or ``"vmap"`` (see above).
      shard: ``(i, n)``: compute only slice ``i`` of ``n`` of the grid; default the whole grid.
      checkpoint: a directory to commit chunks to and resume from; default none.
      keep_in_memory: keep the results to return them (default). ``False`` (with
        ``checkpoint``) drops each chunk once it is committed and returns None: peak memory is
        one chunk's, not the grid's; read the results with `load_sweep`.
      fingerprint: the function's identity in the manifest; default
        ``module.qualname:hash(bytecode)`` (``_checkpoint.function_fingerprint``), which does not
        see captured data or called functions: pass your own string (e.g. a hash of your
        configuration) when those change between runs.

    Returns:
      ``fn``'s output pytree with a leading grid axis (the shard's points with ``shard``), or
      None with ``keep_in_memory=False``.

    Examples:
      >>> def run(scale):
      ...     return gradient_descent(lambda p: 0.5 * scale * p**2, jnp.ones(()), lr=0.1, steps=10)
      >>> out = sweep(run, jnp.array([1.0, 2.0, 3.0]), progress=False)
      >>> out.values["loss"].shape, out.stats.ok.tolist()
      ((3, 11), [True, True, True])

    Raises:
      ValueError: an empty grid, leaves of different leading sizes, a non-positive chunk size,
        an unknown ``batching``, ``shard`` not ``(i, n)`` with ``0 <= i < n <= N``, a
        ``checkpoint`` that is a file or not writable, a checkpoint of another sweep,
        ``keep_in_memory=False`` without ``checkpoint``.
      SweepPreempted: a SIGTERM arrived during a checkpointed sweep (after committing).
    """
    _checks.check_callable("fn", fn)
    _checks.check_option("batching", batching, BATCHING)
    keep_in_memory = _checks.check_bool("keep_in_memory", keep_in_memory)
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
    lo, hi, shard = _shard_bounds(shard, n)
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ValueError(f"fingerprint: expected a string, got {fingerprint!r}")
    if checkpoint is None and not keep_in_memory:
        raise ValueError(
            "keep_in_memory: False drops every result, so it needs checkpoint=path to keep them"
        )
    mp.warn_single_cpu(devices)
    nd = len(devices)
    if batching == "auto":
        batching = "map" if all(d.platform == "cpu" for d in devices) else "fused"
    m = hi - lo
    chunk = m if chunk_size is None else min(chunk_size, m)
    padded = -(-chunk // nd) * nd
    starts = range(0, m, chunk)
    grid = jax.tree_util.tree_map(jnp.asarray, grid)

    root = manifest = None
    done = np.zeros(len(starts), bool)
    loaded: dict[int, list] = {}
    if checkpoint is not None:
        first = jax.tree_util.tree_map(lambda x: x[lo], grid)
        out_shape = jax.eval_shape(fn, first)  # traces fn once; compiles nothing
        out_leaves, out_tree = jax.tree_util.tree_flatten(out_shape)
        manifest = ckpt.manifest(
            fingerprint=ckpt.function_fingerprint(fn) if fingerprint is None else fingerprint,
            grid_hash=ckpt.grid_hash(grid),
            grid_size=n,
            shard=shard,
            points=(lo, hi),
            chunk_size=chunk,
            n_chunks=len(starts),
            batching=batching,
            out_shape=out_shape,
        )
        error = None
        if jax.process_index() == 0:
            try:
                root = ckpt.check_directory("checkpoint", checkpoint, create=True)
                ckpt.open_store(root, manifest, out_tree)
                for k in range(len(starts)):
                    leaves = ckpt.read_chunk(root, manifest, k)
                    done[k] = leaves is not None
                    if leaves is not None and keep_in_memory:
                        loaded[k] = leaves
            except (ValueError, FileNotFoundError) as e:
                error = e
        mp.raise_everywhere(error)
        done = np.asarray(mp.broadcast(done))
        log.info("sweep: %d of %d chunks committed in %s", done.sum(), len(starts), checkpoint)

    compiled, sharding = _compiled(fn, devices, batching)
    # Deal the lanes of a chunk to the devices like cards (device d gets lanes d, d + nd, ...),
    # so that a grid sorted by difficulty (e.g. by scale) loads every device alike.
    deal = np.arange(padded).reshape(padded // nd, nd).T.ravel()
    undeal = np.argsort(deal)
    bar = Progress(m, desc="sweep", enabled=progress and len(starts) > 1, unit="pt")
    preemption = mp.Preemption(enabled=checkpoint is not None)
    outs = []
    try:
        for k, start in enumerate(starts):
            stop = min(start + chunk, m)
            if done[k]:
                if keep_in_memory:
                    leaves = loaded.pop(k, None)
                    if leaves is None:  # another process: process 0 sends its copy
                        leaves = [np.zeros((stop - start, *x.shape), x.dtype) for x in out_leaves]
                    leaves = mp.broadcast(leaves)
                    outs.append(jax.tree_util.tree_unflatten(out_tree, leaves))
            else:
                idx = lo + np.minimum(start + deal, stop - 1)
                part = jax.tree_util.tree_map(lambda x, idx=idx: x[idx], grid)
                out = mp.gather(compiled(jax.device_put(part, sharding)))
                out = jax.tree_util.tree_map(lambda x, k=stop - start: x[undeal[:k]], out)
                jax.block_until_ready(out)
                if root is not None:
                    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(out)]
                    ckpt.write_chunk(root, k, leaves)
                    log.info("sweep: committed chunk %d of %d", k, len(starts))
                if keep_in_memory:
                    outs.append(out)
            bar.update(stop - start)
            if k + 1 < len(starts) and preemption.reached():
                raise SweepPreempted(
                    f"sweep: pre-empted (SIGTERM) after chunk {k + 1} of {len(starts)}; every "
                    f"chunk so far is committed in {str(checkpoint)!r}: rerun to resume"
                )
    finally:
        preemption.close()
        bar.close()
    if not keep_in_memory:
        return None
    if len(outs) == 1:
        return jax.tree_util.tree_map(jnp.asarray, outs[0])
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)
