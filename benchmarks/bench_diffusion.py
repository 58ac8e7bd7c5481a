"""Benchmark: the empirical optimal score of a large dataset, and end-to-end sampling.

1. ``s*(t, y)`` for n training points in d dimensions at q queries, float32 (the data are
   Gaussian noise made up on the spot: the cost does not depend on their values), in one run:
   * flowax `empirical_score` (streamed over data chunks: two ``[q, chunk] x [chunk, d]``
     products per chunk and a running log-sum-exp; memory ``O(q x chunk)``);
   * the straightforward NumPy version (the ``[q, n]`` squared-distance matrix by the matmul
     identity, a stable softmax, one more product);
   * the straightforward JAX version ``vmap(grad(y -> logsumexp(-|y - mu x_i|^2 / 2 sigma^2)))``
     under jit (XLA fuses the distance into the reduction: ``q n d`` elementwise work, no
     matmul).
   The floor is the two ``q x n x d`` matrix products (``4 q n d`` FLOPs): "of matmul" is their
   time by XLA alone (the same shapes, on 4096-point blocks) over flowax's time. Memory: XLA's
   temporary buffers of the compiled program (``memory_analysis``) and NumPy's peak
   (tracemalloc). Peers too slow or too large at a size are run on a slice of the queries and
   scaled (marked ``~``).
2. 10^4 samples by 200 reverse-SDE (Euler-Maruyama) steps with the empirical score of n points in
   d = 2: flowax `sample` against the NumPy loop.

``--quick``: smaller sizes (under a minute).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
from _timing import timed
from flowax.dynamics import diffusion

PROC = diffusion.OrnsteinUhlenbeck(T=5.0)
T = 0.5


def numpy_score(y, x, mu, sigma):
    d2 = (y**2).sum(1)[:, None] - 2 * mu * (y @ x.T) + mu**2 * (x**2).sum(1)[None, :]
    logits = -d2 / (2 * sigma**2)
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    return (mu * (p @ x) - y) / sigma**2


def jax_grad_score(x, mu, sigma):
    def logp(y):
        return jax.scipy.special.logsumexp(-jnp.sum((y[None] - mu * x) ** 2, 1) / (2 * sigma**2))

    return jax.jit(jax.vmap(jax.grad(logp)))


def _wall(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_seconds(q, n, d, repeats=3):
    """The floor: the two products of the score, ``[q, d] x [d, n]`` and ``[q, n] x [n, d]``, by
    XLA on blocks of 4096 data points (scaled to n)."""
    rng = np.random.default_rng(5)
    block = min(n, 4096)
    a = jnp.asarray(rng.standard_normal((q, d)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((block, d)), jnp.float32)
    p = jnp.asarray(rng.random((q, block)), jnp.float32)
    f = jax.jit(lambda a, b, p: (a @ b.T, p @ b))
    _, s, _ = timed(lambda: f(a, b, p), repeats)
    return s * n / block


def part1(quick):
    work = 5e8 if quick else 4e9  # most q n d elementwise work given to the jax.grad version
    sizes = (
        [(10_000, 2, 2000), (10_000, 784, 2000)]
        if quick
        else [
            (10_000, 2, 10_000),
            (100_000, 2, 10_000),
            (10_000, 784, 10_000),
            (100_000, 784, 10_000),
        ]
    )
    mu, sigma = float(PROC.mean_scale(T)), float(PROC.std(T))
    print("1. empirical score, float32 (times in s; ~ = measured on a query slice and scaled)")
    print(
        f"{'n':>7} {'d':>4} {'q':>6} | {'flowax':>8} {'compile':>7} {'MiB':>6} {'of matmul':>9} | "
        f"{'NumPy':>9} {'MiB':>6} {'ratio':>6} | {'jax.grad':>9} {'ratio':>6} | {'max rel err':>11}"
    )
    rng = np.random.default_rng(0)
    for n, d, q in sizes:
        x = rng.standard_normal((n, d)).astype(np.float32)
        y = (mu * x[:q] + sigma * rng.standard_normal((q, d))).astype(np.float32)
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        score = diffusion.empirical_score(xj, PROC, chunk_size=2048)
        f = jax.jit(lambda s, y: s(T, y))
        c, s, out = timed(lambda: f(score, yj), 2 if n * d * q < 1e11 else 1)
        mem = f.lower(score, yj).compile().memory_analysis()
        mib = mem.temp_size_in_bytes / 2**20 if mem is not None else float("nan")
        frac = matmul_seconds(q, n, d) / s
        # NumPy on at most 2e8 [q, n] entries
        qs = max(1, min(q, int(2e8 // n)))
        tracemalloc.start()
        t_np = _wall(lambda: numpy_score(y[:qs], x, mu, sigma)) * q / qs
        np_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        ref = numpy_score(y[:64], x, mu, sigma)
        err = float(np.max(np.abs(np.asarray(out[:64]) - ref)) / np.max(np.abs(ref)))
        # jax.grad(logsumexp): q n d elementwise work; on a slice of at most `work` of it
        qg = max(1, min(q, int(work // (n * d)), int(2e8 // n)))  # and its [q, n] arrays
        g = jax_grad_score(xj, mu, sigma)
        _, t_g, _ = timed(lambda: g(yj[:qg]), 1)
        t_g *= q / qg
        mark_np = "~" if qs < q else " "
        mark_g = "~" if qg < q else " "
        print(
            f"{n:>7} {d:>4} {q:>6} | {s:>8.3f} {c - s:>7.2f} {mib:>6.0f} {frac:>8.0%} | "
            f"{mark_np}{t_np:>8.3f} {np_mib:>6.0f} {t_np / s:>6.1f} | {mark_g}{t_g:>8.3f} "
            f"{t_g / s:>6.1f} | {err:>11.1e}"
        )


def part2(quick):
    n_data, n, steps = (1000, 1000, 200) if quick else (10_000, 10_000, 200)
    print(f"\n2. {n} samples, {steps} reverse-SDE steps, empirical score of {n_data} points, d = 2")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n_data, 2)).astype(np.float32)
    score = diffusion.empirical_score(jnp.asarray(x), PROC)
    t_min = 0.01

    @jax.jit
    def run(score, key):
        return diffusion.sample(
            score, PROC, key=key, n=n, event_shape=(2,), t_min=t_min, steps=steps,
            dtype=jnp.float32,
        )  # fmt: skip

    c, s, (out, stats) = timed(lambda: run(score, jax.random.key(0)), 1)
    assert int(stats.status) == 0

    np_steps = steps if quick else 20  # the full NumPy loop would take ~10 minutes: scaled

    def numpy_loop():
        y = rng.standard_normal((n, 2)).astype(np.float32)
        du = (PROC.T - t_min) / steps
        for k in range(np_steps):
            t = PROC.T - k * du
            mu, sig = float(np.exp(-t)), float(np.sqrt(-np.expm1(-2 * t)))
            drift = y + 2 * numpy_score(y, x, mu, sig)
            y = y + du * drift + np.sqrt(2 * du) * rng.standard_normal(y.shape).astype(np.float32)
        return y

    t_np = _wall(numpy_loop) * steps / np_steps
    mark = "~" if np_steps < steps else ""
    print(
        f"   flowax sample: {s:.2f} s (compile {c - s:.2f} s); NumPy loop {mark}{t_np:.2f} s: "
        f"{t_np / s:.1f}x"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    part1(args.quick)
    part2(args.quick)


if __name__ == "__main__":
    main()
