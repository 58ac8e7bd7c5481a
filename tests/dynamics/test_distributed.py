"""A sweep on jax.distributed: two processes on 127.0.0.1 with two CPU devices each give the
single-process (four-device) result bit for bit, to every process, with and without a
checkpoint (process 0 writes; the resume computes only the missing chunk)."""

import os
import pathlib
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

JOB = pathlib.Path(__file__).with_name("_distributed_job.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, str(JOB), str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_all(procs, timeout):
    """Waits for every process; on any timeout or failure kills them all (no orphans)."""
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return logs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    dist, single = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("single")
    port = _free_port()
    procs = [_start(dist, str(i), str(port)) for i in range(2)] + [_start(single, "single")]
    logs = _wait_all(procs, timeout=240)
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log
    load = lambda path: dict(np.load(path))  # noqa: E731
    return [load(dist / f"result-{i}.npz") for i in range(2)], load(single / "result-0.npz")


def test_two_processes_equal_one_process_bit_for_bit(results):
    (p0, p1), single = results
    keys = [k for k in single if k.startswith("plain_")]
    assert len(keys) > 5
    for k in keys:
        assert single[k].dtype == p0[k].dtype and single[k].shape == p0[k].shape
        assert p0[k].tobytes() == single[k].tobytes(), k  # process 0 has it all
        assert p1[k].tobytes() == single[k].tobytes(), k  # and so has process 1
    # ... and it is a real sweep: every lane solved, its loss decreasing along the flow.
    assert single["ok"].all() and single["loss"].shape == (10, 5)
    assert (np.diff(single["loss"], axis=1) <= 0).all()


def test_checkpointed_and_resumed_under_two_processes(results):
    (p0, p1), single = results
    for proc in (p0, p1):
        for k in (k for k in single if k.startswith("plain_")):
            j = k.split("_")[1]
            assert proc[f"first_{j}"].tobytes() == single[k].tobytes()
            assert proc[f"resumed_{j}"].tobytes() == single[k].tobytes()
    # 10 points in chunks of 4: three chunks, written by process 0 only.
    assert [f for f in p0["files"].tolist() if f.startswith("chunk_")] == [
        f"chunk_{k:06d}.npz" for k in range(3)
    ]
    # A mismatched rerun raises on both processes, with process 0's explanation.
    assert "chunk_size: on disk 4, now 3" in str(p0["mismatch"])
    assert "(on process 0)" in str(p1["mismatch"]) and "chunk_size" in str(p1["mismatch"])
