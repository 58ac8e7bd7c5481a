"""Hosts and processes: CPU cores as devices, ``jax.distributed`` helpers, pre-emption.

flowax never calls ``jax.distributed.initialize()``: the user's launcher does (every process runs
the same script; ``initialize()`` reads SLURM's variables itself). Under it, ``jax.devices()``
lists every process's devices and a sweep's compiled program runs on all of them; these helpers
move small host values between the processes with JAX's own ``multihost_utils``.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from typing import Any

import jax
import numpy as np

PyTree = Any
_WARNED = False
_SYNC_STEP = 0  # chunk boundaries passed by this process, across sweeps (pre-emption sync ids)


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask: SLURM's ``--cpus-per-task``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_cpu_cores(n: int | None = None) -> int:
    """Makes JAX's CPU backend one device per core, so a sweep runs on every core at once.

    Call it once, before any computation (before anything creates an array):
    ``import flowax; flowax.use_cpu_cores()``. It sets JAX's ``jax_num_cpu_devices``; a
    `flowax.dynamics.sweep` then deals its lanes over the cores (``batching="map"``: each core
    runs its lanes one after the other, in one compiled program). On an accelerator host it is
    harmless: the accelerators stay the default devices.

    Args:
      n: number of CPU devices; default the cores this process may use (its affinity mask).

    Returns:
      The number of CPU devices set.

    Raises:
      ValueError: ``n`` is not a positive integer.
      RuntimeError: JAX's backends are already initialized (an array was created first).
    """
    from ..models import _checks

    n = cpu_count() if n is None else _checks.check_positive_int("n", n)
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError as e:
        raise RuntimeError(
            "use_cpu_cores: JAX's backends are already initialized; call "
            "flowax.use_cpu_cores() first, before any computation creates an array "
            f"({e})"
        ) from None
    return n


def warn_single_cpu(devices) -> None:
    """Warns once when a sweep runs on one CPU device of a host with several cores."""
    global _WARNED
    cores = cpu_count()
    if _WARNED or len(devices) != 1 or devices[0].platform != "cpu" or cores < 2:
        return
    _WARNED = True
    warnings.warn(
        f"sweep runs on 1 CPU device of a host with {cores} cores: call "
        "flowax.use_cpu_cores() before any computation to run on all of them",
        stacklevel=3,
    )


def multiprocess() -> bool:
    return jax.process_count() > 1


def gather(tree: PyTree) -> PyTree:
    """Every process's copy of a global result (host NumPy arrays)."""
    if not multiprocess():
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def broadcast(tree: PyTree) -> PyTree:
    """Process 0's value of ``tree`` on every process (the others pass placeholders)."""
    if not multiprocess():
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(tree)


def raise_everywhere(error: Exception | None) -> None:
    """Raises process 0's error (a ValueError or FileNotFoundError) on every process."""
    if multiprocess():
        code = np.zeros(4096, np.uint8)
        if error is not None:
            kind = b"F" if isinstance(error, FileNotFoundError) else b"V"
            msg = (kind + str(error).encode())[: code.size - 1]
            code[: len(msg)] = np.frombuffer(msg, np.uint8)
        code = np.asarray(broadcast(code))
        if code[0] and error is None:
            text = bytes(code[code > 0]).decode(errors="replace")
            cls = FileNotFoundError if text[0] == "F" else ValueError
            error = cls(f"(on process 0) {text[1:]}")
    if error is not None:
        raise error


class Preemption:
    """Notices a pre-emption (SIGTERM) and agrees on the chunk boundary where every process stops.

    Under ``jax.distributed`` this is JAX's own pre-emption sync point
    (``multihost_utils.reached_preemption_sync_point``): every process returns True at the same
    boundary. In one process, a SIGTERM handler (installed only in the main thread and only when
    none is set) records the signal, and the sweep stops at its next chunk boundary.
    """

    def __init__(self, enabled: bool):
        self.enabled, self.flag, self.previous = enabled, False, None
        single = not multiprocess() and threading.current_thread() is threading.main_thread()
        if enabled and single and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self.previous = signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame):
        self.flag = True

    def reached(self) -> bool:
        """True at the chunk boundary where the sweep must stop (on every process alike)."""
        global _SYNC_STEP
        if not self.enabled:
            return False
        _SYNC_STEP += 1
        if multiprocess():
            from jax.experimental import multihost_utils

            try:
                return bool(multihost_utils.reached_preemption_sync_point(_SYNC_STEP))
            except Exception:  # no pre-emption service in this runtime
                return False
        return self.flag

    def close(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None
