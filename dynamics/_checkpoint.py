"""Checkpoints of sweeps: a directory with a manifest and one file per finished chunk.

Layout of ``path/``:

* ``manifest.json``: what the sweep is (see `manifest`); compared field by field on resume.
* ``treedef.pkl``: the output's tree structure (pickled, for `load_sweep` / `merge_shards`).
* ``chunk_000000.npz``, ...: one per committed chunk, the raw bytes of every output leaf and a
  SHA-256 of them (and of the chunk's index), so a truncated or corrupted file is detected
  and recomputed, never loaded.

Every file is written atomically: to a temporary file in the same directory, ``fsync``,
``os.replace`` onto its name, ``fsync`` of the directory. A process killed at any instant
leaves each chunk either committed whole or absent.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pathlib
import pickle
import types
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
FORMAT = 1
MANIFEST = "manifest.json"
TREEDEF = "treedef.pkl"
# Fields that must match for a rerun to resume (the rest is recorded for the reader).
CHECKED = (
    "format",
    "fingerprint",
    "grid_hash",
    "grid_size",
    "shard",
    "points",
    "chunk_size",
    "n_chunks",
    "batching",
    "output",
)
log = logging.getLogger("flowax.sweep")


def _flowax_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("flowax")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def grid_hash(grid: PyTree) -> str:
    """SHA-256 of a grid: its tree structure and every leaf's dtype, shape and bytes."""
    h = hashlib.sha256()
    leaves, treedef = jax.tree_util.tree_flatten(grid)
    h.update(str(treedef).encode())
    for leaf in leaves:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype.name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _digest_code(code: types.CodeType, h) -> None:
    h.update(code.co_code)
    h.update(" ".join(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _digest_code(c, h)
        else:
            h.update(repr(c).encode())


def function_fingerprint(fn: Callable) -> str:
    """The default fingerprint of a sweep's function: its qualified name and a hash of its code.

    ``module.qualname:sha256(bytecode, names, constants)[:16]``, through ``functools.partial``
    (whose bound arguments are included by ``repr``). Editing the function's body changes it;
    it does not see the data a closure captures or the functions it calls: pass
    ``sweep(..., fingerprint=...)`` (e.g. a hash of your configuration) when those change.
    """
    h = hashlib.sha256()
    target = fn
    while isinstance(target, functools.partial):
        h.update(repr((target.args, sorted(target.keywords.items()))).encode())
        target = target.func
    name = getattr(target, "__qualname__", type(target).__qualname__)
    module = getattr(target, "__module__", type(target).__module__)
    code = getattr(target, "__code__", None)
    if code is None:
        code = getattr(type(target).__dict__.get("__call__"), "__code__", None)
    if code is not None:
        _digest_code(code, h)
    return f"{module}.{name}:{h.hexdigest()[:16]}"


def manifest(
    *,
    fingerprint: str,
    grid_hash: str,
    grid_size: int,
    shard: tuple[int, int],
    points: tuple[int, int],
    chunk_size: int,
    n_chunks: int,
    batching: str,
    out_shape: PyTree,
) -> dict:
    """The manifest of a checkpointed sweep (a JSON-able dict)."""
    leaves, treedef = jax.tree_util.tree_flatten(out_shape)
    return {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "grid_hash": grid_hash,
        "grid_size": int(grid_size),
        "shard": [int(shard[0]), int(shard[1])],
        "points": [int(points[0]), int(points[1])],
        "chunk_size": int(chunk_size),
        "n_chunks": int(n_chunks),
        "batching": batching,
        "output": {
            "treedef": str(treedef),
            "leaves": [{"shape": list(x.shape), "dtype": jnp.dtype(x.dtype).name} for x in leaves],
        },
        "flowax_version": _flowax_version(),
        "jax_version": jax.__version__,
    }


def _fsync_dir(path: pathlib.Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: pathlib.Path, write: Callable[[Any], None]) -> None:
    """Writes ``path`` all or nothing: temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _chunk_path(root: pathlib.Path, k: int) -> pathlib.Path:
    return root / f"chunk_{k:06d}.npz"


def _chunk_digest(k: int, raws: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256(f"chunk {k}".encode())
    for r in raws:
        h.update(r.tobytes())
    return h.hexdigest()


def check_directory(name: str, path: Any, *, create: bool) -> pathlib.Path:
    """A checkpoint directory: a path that is not a file, creatable and writable (or readable)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name}: expected a directory path (str or os.PathLike), got {path!r}")
    root = pathlib.Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{name}: expected a directory, got the file {str(root)!r}")
    if not create:
        if not (root / MANIFEST).is_file():
            raise FileNotFoundError(f"{name}: no sweep checkpoint at {str(root)!r} (no {MANIFEST})")
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{name}: cannot create the directory {str(root)!r}: {e}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: expected a writable directory, {str(root)!r} is not writable")
    return root


def read_manifest(root: pathlib.Path) -> dict:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"checkpoint: cannot read {str(root / MANIFEST)!r}: {e}") from None


def differences(old: dict, new: dict, keys: Iterable[str] = CHECKED) -> list[str]:
    """The checked fields where two manifests differ, as readable lines."""
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if a != b:
            if key == "output":
                a, b = a and a.get("leaves"), b and b.get("leaves")
                if a == b:
                    a, b = old[key].get("treedef"), new[key].get("treedef")
            out.append(f"{key}: on disk {a!r}, now {b!r}")
    return out


def open_store(root: pathlib.Path, new: dict, treedef) -> None:
    """Writes the manifest of a new checkpoint, or checks that an existing one matches ``new``.

    Raises ValueError naming every field that differs; warns when only versions differ.
    """
    if (root / MANIFEST).exists():
        old = read_manifest(root)
        diff = differences(old, new)
        if diff:
            raise ValueError(
                f"checkpoint: {str(root)!r} holds another sweep; "
                + "; ".join(diff)
                + ". Use another directory (or delete this one to start over)."
            )
        versions = differences(old, new, ("flowax_version", "jax_version"))
        if versions:
            warnings.warn(
                f"checkpoint {str(root)!r} was written by other versions ({'; '.join(versions)}):"
                " resumed chunks may differ from a fresh run in the last bits",
                stacklevel=3,
            )
        for stale in root.glob(".chunk_*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        return
    atomic_write(root / TREEDEF, lambda f: pickle.dump(treedef, f))
    atomic_write(root / MANIFEST, lambda f: f.write(json.dumps(new, indent=1).encode()))


def _chunk_points(m: dict, k: int) -> int:
    size = m["points"][1] - m["points"][0]
    return min(m["chunk_size"], size - k * m["chunk_size"])


def write_chunk(root: pathlib.Path, k: int, leaves: Sequence[np.ndarray]) -> None:
    raws = [np.frombuffer(np.ascontiguousarray(x).tobytes(), np.uint8) for x in leaves]
    arrays = {f"leaf_{j}": r for j, r in enumerate(raws)}
    arrays["sha256"] = np.array(_chunk_digest(k, raws))
    atomic_write(_chunk_path(root, k), lambda f: np.savez(f, **arrays))


def read_chunk(root: pathlib.Path, m: dict, k: int) -> list[np.ndarray] | None:
    """The leaves of chunk ``k``, or None when it is absent, truncated or corrupted."""
    path = _chunk_path(root, k)
    if not path.exists():
        return None
    specs = m["output"]["leaves"]
    n = _chunk_points(m, k)
    try:
        with np.load(path, allow_pickle=False) as z:
            raws = [z[f"leaf_{j}"] for j in range(len(specs))]
            stored = str(z["sha256"])
        if stored != _chunk_digest(k, raws):
            raise ValueError("checksum mismatch")
        out = []
        for raw, spec in zip(raws, specs, strict=True):
            out.append(raw.view(jnp.dtype(spec["dtype"])).reshape((n, *spec["shape"])))
        return out
    except Exception as e:  # a torn or foreign file: report it and recompute
        log.warning("checkpoint chunk %s is unreadable (%s): recomputing it", path, e)
        return None


def _treedef(root: pathlib.Path, structure: PyTree | None):
    if structure is not None:
        return jax.tree_util.tree_structure(structure)
    with open(root / TREEDEF, "rb") as f:
        return pickle.load(f)


def _assemble(root: pathlib.Path, m: dict, chunks: Iterable[int]) -> list[np.ndarray]:
    parts, missing = [], []
    for k in chunks:
        leaves = read_chunk(root, m, k)
        if leaves is None:
            missing.append(k)
        parts.append(leaves)
    if missing:
        raise ValueError(
            f"checkpoint: {str(root)!r} is incomplete: chunks {missing} of {m['n_chunks']} are "
            "missing or corrupt; rerun the sweep with the same arguments to compute them"
        )
    return [np.concatenate(xs) for xs in zip(*parts, strict=True)]


def load_sweep(
    path: str | os.PathLike,
    *,
    chunks: Iterable[int] | None = None,
    structure: PyTree | None = None,
) -> PyTree:
    """Loads the results of a checkpointed sweep without recomputing anything.

    Args:
      path: the directory given as ``sweep(..., checkpoint=path)``.
      chunks: which chunks to load (indices in ``range(n_chunks)``, concatenated in the order
        given); default all of them. Load a few at a time to read a sweep larger than memory.
      structure: any pytree with the output's structure (e.g. ``jax.eval_shape(fn, point)``);
        default the structure pickled in the checkpoint (load only checkpoints you trust, as
        with ``numpy.load(allow_pickle=True)``).

    Returns:
      The output pytree with a leading axis over the loaded points (NumPy arrays), in grid order.

    Raises:
      FileNotFoundError: no checkpoint at ``path``.
      ValueError: a requested chunk is missing or corrupt, or ``chunks`` is out of range.
    """
    root = check_directory("path", path, create=False)
    m = read_manifest(root)
    if chunks is None:
        ks = list(range(m["n_chunks"]))
    elif isinstance(chunks, (str, bytes)) or not isinstance(chunks, Iterable):
        raise ValueError(f"chunks: expected an iterable of chunk indices, got {chunks!r}")
    else:
        ks = list(chunks)
    bad = [
        k
        for k in ks
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < m["n_chunks"]
    ]
    if bad:
        raise ValueError(f"chunks: expected indices in [0, {m['n_chunks']}), got {bad}")
    leaves = _assemble(root, m, ks)
    return jax.tree_util.tree_unflatten(_treedef(root, structure), leaves)


def merge_shards(paths: Sequence[str | os.PathLike], *, structure: PyTree | None = None) -> PyTree:
    """Assembles the full result of a sweep run as shards (``sweep(..., shard=(i, n))``).

    Every shard's checkpoint must be present exactly once, complete, and from the same sweep
    (function fingerprint, grid, number of shards, output structure, batching).

    Args:
      paths: the checkpoint directories of the shards, in any order.
      structure: as in `load_sweep`.

    Returns:
      The output pytree over the whole grid (NumPy arrays), in grid order.

    Raises:
      FileNotFoundError: a path holds no checkpoint.
      ValueError: shards of different sweeps, a shard missing or given twice, an incomplete
        shard.
    """
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence):
        raise ValueError(f"paths: expected a sequence of checkpoint directories, got {paths!r}")
    if not paths:
        raise ValueError("paths: expected at least one checkpoint directory, got none")
    roots = [check_directory(f"paths[{j}]", p, create=False) for j, p in enumerate(paths)]
    ms = [read_manifest(r) for r in roots]
    same = ("format", "fingerprint", "grid_hash", "grid_size", "batching", "output")
    for r, m in zip(roots[1:], ms[1:], strict=True):
        diff = differences(ms[0], m, same)
        if ms[0]["shard"][1] != m["shard"][1]:
            diff.append(f"number of shards: {ms[0]['shard'][1]} vs {m['shard'][1]}")
        if diff:
            raise ValueError(
                f"paths: {str(roots[0])!r} and {str(r)!r} are shards of different sweeps; "
                + "; ".join(diff)
            )
    n = ms[0]["shard"][1]
    seen: dict[int, pathlib.Path] = {}
    for r, m in zip(roots, ms, strict=True):
        i = m["shard"][0]
        if i in seen:
            raise ValueError(
                f"paths: shard {i} of {n} is given twice: {str(seen[i])!r}, {str(r)!r}"
            )
        seen[i] = r
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise ValueError(f"paths: shards {missing} of {n} are missing")
    order = sorted(range(len(roots)), key=lambda j: ms[j]["shard"][0])
    parts = [_assemble(roots[j], ms[j], range(ms[j]["n_chunks"])) for j in order]
    leaves = [np.concatenate(xs) for xs in zip(*parts, strict=True)]
    return jax.tree_util.tree_unflatten(_treedef(roots[0], structure), leaves)
