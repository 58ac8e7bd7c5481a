"""Checkpointed, sharded sweeps: resume == uninterrupted bit for bit, no committed chunk is
recomputed, torn files are detected, manifests guard against mixing runs, shards merge."""

import logging
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics

SCALES = jnp.linspace(0.2, 1.8, 10)
JOB = pathlib.Path(__file__).with_name("_sweep_job.py")


def run(scale):
    loss = lambda p: 0.5 * scale * jnp.sum(p**2) + 0.25 * jnp.sum(p**4)  # noqa: E731
    return dynamics.gradient_descent(loss, jnp.linspace(-1.0, 1.0, 3), lr=0.1, steps=40, n_save=5)


def other_output(scale):
    return {"x": scale * jnp.ones(2)}


def assert_same(a, b):
    """Bit for bit: same structure, dtypes, shapes and bytes."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@pytest.fixture(scope="module")
def reference():
    return dynamics.sweep(run, SCALES, chunk_size=3, progress=False)


class Committed(logging.Handler):
    def __init__(self):
        super().__init__()
        self.chunks = []

    def emit(self, record):
        if "committed chunk" in record.getMessage():
            self.chunks.append(record.args[0])


@pytest.fixture
def committed():
    logger = logging.getLogger("flowax.sweep")
    handler, level = Committed(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.chunks
    logger.removeHandler(handler)
    logger.setLevel(level)


def chunk_files(path):
    return sorted(pathlib.Path(path).glob("chunk_*.npz"))


def stamps(path):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunk_files(path)}


def test_resume_recomputes_only_missing_chunks_and_equals_uninterrupted(
    tmp_path, reference, committed
):
    out = dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path)
    assert_same(out, reference)
    assert committed == [0, 1, 2, 3] and len(chunk_files(tmp_path)) == 4  # 10 points, chunks of 3
    for k in (1, 3):
        (tmp_path / f"chunk_{k:06d}.npz").unlink()
    kept = stamps(tmp_path)
    committed.clear()
    out = dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path)
    assert committed == [1, 3]  # no committed chunk is computed again
    assert {k: v for k, v in stamps(tmp_path).items() if k in kept} == kept  # nor rewritten
    assert_same(out, reference)
    # A finished sweep: rerunning computes nothing; load_sweep reads it without the function.
    committed.clear()
    assert_same(dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path), out)
    assert committed == []
    assert_same(jax.tree_util.tree_map(jnp.asarray, dynamics.load_sweep(tmp_path)), reference)
    part = dynamics.load_sweep(tmp_path, chunks=[2], structure=jax.eval_shape(run, SCALES[0]))
    assert_same(
        jax.tree_util.tree_map(jnp.asarray, part),
        jax.tree_util.tree_map(lambda x: x[6:9], reference),
    )


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_torn_or_corrupted_chunk_is_recomputed_not_loaded(
    tmp_path, reference, committed, damage, caplog
):
    dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path)
    path = tmp_path / "chunk_000002.npz"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one bit of the payload: the file still parses, the checksum fails
        i = data.index(b"leaf_1.npy") + 200
        path.write_bytes(data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :])
    else:
        path.write_bytes(b"not a chunk")
    with pytest.raises(ValueError, match=r"chunks \[2\] of 4 are missing or corrupt"):
        dynamics.load_sweep(tmp_path)
    committed.clear()
    out = dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path)
    assert committed == [2]
    assert "unreadable" in caplog.text
    assert_same(out, reference)


def test_manifest_mismatch_says_what_differs(tmp_path):
    dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="grid_hash: on disk") as e:
        dynamics.sweep(run, SCALES * 2, chunk_size=3, progress=False, checkpoint=tmp_path)
    assert "chunk_size" not in str(e.value)
    with pytest.raises(ValueError, match=r"chunk_size: on disk 3, now 5"):
        dynamics.sweep(run, SCALES, chunk_size=5, progress=False, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="fingerprint: on disk"):
        dynamics.sweep(other_output, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path)
    fp = {"fingerprint": "mine"}
    dynamics.sweep(run, SCALES, chunk_size=3, progress=False, checkpoint=tmp_path / "b", **fp)
    with pytest.raises(ValueError, match="output: on disk"):
        dynamics.sweep(other_output, SCALES, chunk_size=3, checkpoint=tmp_path / "b", **fp)
    with pytest.raises(ValueError, match="batching: on disk 'map', now 'vmap'"):
        dynamics.sweep(run, SCALES, chunk_size=3, checkpoint=tmp_path, batching="vmap")


def test_keep_in_memory_false_returns_nothing_and_the_checkpoint_holds_all(tmp_path, reference):
    assert (
        dynamics.sweep(
            run, SCALES, chunk_size=4, progress=False, checkpoint=tmp_path, keep_in_memory=False
        )
        is None
    )
    loaded = jax.tree_util.tree_map(jnp.asarray, dynamics.load_sweep(tmp_path))
    assert_same(loaded, reference)


def test_shards_merge_to_the_whole_sweep(tmp_path, reference):
    paths = [tmp_path / f"shard{i}" for i in range(3)]
    parts = [
        dynamics.sweep(run, SCALES, shard=(i, 3), chunk_size=2, progress=False, checkpoint=p)
        for i, p in enumerate(paths)
    ]
    # Deterministic contiguous slices [i*N//n, (i+1)*N//n): 3, 3, 4 points.
    assert [len(p.values["loss"]) for p in parts] == [3, 3, 4]
    for i, part in enumerate(parts):
        assert_same(
            part,
            jax.tree_util.tree_map(lambda x, i=i: x[i * 10 // 3 : (i + 1) * 10 // 3], reference),
        )
    merged = dynamics.merge_shards(paths[::-1])  # any order
    assert_same(jax.tree_util.tree_map(jnp.asarray, merged), reference)
    with pytest.raises(ValueError, match=r"shards \[1\] of 3 are missing"):
        dynamics.merge_shards([paths[0], paths[2]])
    with pytest.raises(ValueError, match="shard 0 of 3 is given twice"):
        dynamics.merge_shards([paths[0], paths[0], paths[1], paths[2]])
    dynamics.sweep(run, SCALES * 2, shard=(1, 3), progress=False, checkpoint=tmp_path / "other")
    with pytest.raises(ValueError, match="shards of different sweeps; grid_hash"):
        dynamics.merge_shards([paths[0], tmp_path / "other", paths[2]])
    with pytest.raises(FileNotFoundError, match="no sweep checkpoint"):
        dynamics.merge_shards([paths[0], tmp_path / "nowhere"])
    (paths[2] / "chunk_000001.npz").unlink()  # a failed shard: merging it is refused
    with pytest.raises(ValueError, match="is incomplete"):
        dynamics.merge_shards(paths)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shard": (3, 3)}, r"shard: expected \(i, n\) with n >= 1 and 0 <= i < n, got \(3, 3\)"),
        ({"shard": (0, 0)}, r"n >= 1 and 0 <= i < n, got \(0, 0\)"),
        ({"shard": (-1, 2)}, r"0 <= i < n, got \(-1, 2\)"),
        ({"shard": (0, 11)}, "shard: expected n <= the grid size 10, got n = 11"),
        ({"shard": "0/2"}, "shard: expected a pair of integers"),
        ({"shard": (0.0, 2)}, "shard: expected a pair of integers"),
        ({"keep_in_memory": False}, "keep_in_memory: False drops every result"),
        ({"fingerprint": 3}, "fingerprint: expected a string"),
        ({"checkpoint": 3}, "checkpoint: expected a directory path"),
    ],
)
def test_bad_shard_and_checkpoint_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dynamics.sweep(run, SCALES, progress=False, **kwargs)


def test_checkpoint_path_that_is_a_file_or_unwritable(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="checkpoint: expected a directory, got the file"):
        dynamics.sweep(run, SCALES, progress=False, checkpoint=f)
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="checkpoint: expected a writable directory"):
            dynamics.sweep(run, SCALES, progress=False, checkpoint=ro)
        with pytest.raises(ValueError, match="checkpoint: cannot create the directory"):
            dynamics.sweep(run, SCALES, progress=False, checkpoint=ro / "sub")
    finally:
        ro.chmod(0o700)


def test_load_sweep_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sweep checkpoint"):
        dynamics.load_sweep(tmp_path)
    dynamics.sweep(run, SCALES, chunk_size=5, progress=False, checkpoint=tmp_path)
    with pytest.raises(ValueError, match=r"chunks: expected indices in \[0, 2\), got \[2\]"):
        dynamics.load_sweep(tmp_path, chunks=[0, 2])
    with pytest.raises(ValueError, match="paths: expected a sequence"):
        dynamics.merge_shards(str(tmp_path))


def _job(tmp_path, *extra):
    return subprocess.Popen(
        [sys.executable, str(JOB), str(tmp_path / "ckpt"), str(tmp_path / "out.npz"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_chunks(proc, path, k, timeout=120.0):
    t = time.monotonic()
    while len(chunk_files(path)) < k:
        if proc.poll() is not None:
            raise AssertionError(f"the job ended early:\n{proc.stdout.read()}")
        if time.monotonic() - t > timeout:
            raise AssertionError(f"no {k} chunks after {timeout} s")
        time.sleep(0.02)


def _finish(proc, timeout=180):
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out


def test_sigkill_mid_sweep_then_resume_loses_nothing(tmp_path):
    """A job killed with SIGKILL while computing (0.15 s per lane, 2 lanes per chunk) keeps its
    committed chunks; the rerun computes only the others and equals an uninterrupted run."""
    proc = _job(tmp_path, "--sleep", "0.15")
    try:
        _wait_for_chunks(proc, tmp_path / "ckpt", 2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    kept = stamps(tmp_path / "ckpt")
    assert 2 <= len(kept) < 6
    (tmp_path / "ckpt" / ".chunk_000005.npz.999.tmp").write_bytes(b"torn")  # a torn write
    rerun = _job(tmp_path)
    log = _finish(rerun)
    assert rerun.returncode == 0, log
    assert f"computed {6 - len(kept)}" in log  # 12 points in chunks of 2: only the rest
    after = stamps(tmp_path / "ckpt")
    assert {k: after[k] for k in kept} == kept and len(after) == 6
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))
    with np.load(tmp_path / "out.npz") as z:
        n = len(z.files) // 2
        for j in range(n):
            assert z[f"out_{j}"].tobytes() == z[f"ref_{j}"].tobytes()


def test_sigterm_stops_at_a_chunk_boundary_and_resumes(tmp_path):
    proc = _job(tmp_path, "--sleep", "0.15")
    try:
        _wait_for_chunks(proc, tmp_path / "ckpt", 1)
        os.kill(proc.pid, signal.SIGTERM)
        log = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 3, log  # SweepPreempted, after committing the chunk in flight
    n_done = int(log.split("preempted ")[1].split()[0])
    assert len(chunk_files(tmp_path / "ckpt")) == n_done < 6
    rerun = _job(tmp_path)
    log = _finish(rerun)
    assert rerun.returncode == 0 and f"computed {6 - n_done}" in log, log
