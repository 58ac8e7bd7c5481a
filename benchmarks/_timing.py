"""Timing shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import time

import jax
import numpy as np


def timed(fn, repeats):
    """``(first-call seconds, best of `repeats` later calls, result)``; JAX work is waited for."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return first, best, out
