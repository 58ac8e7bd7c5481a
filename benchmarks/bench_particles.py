"""Benchmark: one WFR (conic particle GD) step of the two-layer mean-field risk, in one run.

Objective: F(mu) = (1/2n) sum_n (sum_i w_i a_i relu(<b_i, z_n>) - y_n)^2 with m particles
theta_i = (a_i, b_i) in R^{1+d}, n samples, float32. One step: first variation by autodiff, then
x <- x - lr alpha grad V, w <- w exp(-lr beta V) (`conic_particle_step`, jitted).

Compared in one run with the same step written by hand in NumPy (what a user would write), and
with this machine's float32 matmul rate (XLA, n x n x n). FLOPs counted: the two n x m x d
products (features and the position gradient) and the n x m products, 4 n m d + 6 n m.

Run:  python benchmarks/bench_particles.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flowax import dynamics
from flowax.dynamics.measures import Particles


def best_of(fn, repeats):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(repeats, n=2048):
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / best_of(lambda: f(a), repeats) / 1e9


def numpy_step(w, x, z, y, lr, alpha, beta):
    """The same step by hand: V_i and grad V_i of the risk, then the conic update."""
    a, b = x[:, 0], x[:, 1:]
    pre = z @ b.T  # [n, m]
    feat = np.maximum(pre, 0)
    resid = (feat @ (w * a) - y) / len(y)  # [n]
    v = a * (feat.T @ resid)  # dF/dw_i
    grad_a = feat.T @ resid  # dV/da_i
    grad_b = a[:, None] * (((pre > 0) * resid[:, None]).T @ z)  # dV/db_i
    grad = np.concatenate([grad_a[:, None], grad_b], axis=1)
    return w * np.exp(-lr * beta * v), x - lr * alpha * grad


def one_size(m, d, n, repeats, with_numpy=True):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((n, d)).astype(np.float32)
    y = np.tanh(z[:, 0]).astype(np.float32)
    x = rng.standard_normal((m, d + 1)).astype(np.float32) / np.sqrt(d)
    w = np.full(m, 1.0 / m, np.float32)
    objective = dynamics.measures.two_layer_risk(jnp.asarray(z), jnp.asarray(y), activation="relu")
    stepper = dynamics.measures.conic_particle_step(objective, lr=0.1, alpha=1.0, beta=1.0)
    step = jax.jit(stepper.step)
    p = Particles(jnp.asarray(w), jnp.asarray(x))
    start = time.perf_counter()
    out = jax.block_until_ready(step(p))
    compile_s = time.perf_counter() - start
    t_fx = best_of(lambda: step(p), repeats)
    t_np = float("nan")
    if with_numpy:
        w_np, x_np = numpy_step(w, x, z, y, 0.1, 1.0, 1.0)
        err = max(
            np.max(np.abs(w_np - np.asarray(out.weights))) / np.max(np.abs(w_np)),
            np.max(np.abs(x_np - np.asarray(out.positions))) / np.max(np.abs(x_np)),
        )
        assert err < 1e-4, f"flowax and NumPy steps differ: {err}"
        t_np = min(_timeit(lambda: numpy_step(w, x, z, y, 0.1, 1.0, 1.0)) for _ in range(repeats))
    flops = 4 * n * m * d + 6 * n * m
    return compile_s, t_fx, t_np, flops


def _timeit(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="m = n = 1024, a short scaling")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    rate = matmul_rate(args.repeats)
    print(f"jax {jax.__version__}, numpy {np.__version__}, devices {jax.devices()}")
    print(f"float32 matmul rate (XLA, 2048^3): {rate:.1f} GFLOP/s")
    m, d, n = (1024, 64, 1024) if args.quick else (4096, 64, 4096)
    c, t_fx, t_np, flops = one_size(m, d, n, args.repeats)
    gf = flops / t_fx / 1e9
    print(f"\nm = {m}, d = {d}, n = {n}, one step ({flops / 1e9:.2f} GFLOP):")
    print("| way | time ms | particle-steps/s | GFLOP/s | of matmul rate | vs NumPy |")
    print("|---|---|---|---|---|---|")
    print(
        f"| flowax conic_particle_step (jit; compile {c:.2f} s) | {t_fx * 1e3:.1f} | "
        f"{m / t_fx:.3g} | {gf:.1f} | {gf / rate:.0%} | {t_np / t_fx:.2f}x |"
    )
    print(
        f"| NumPy by hand | {t_np * 1e3:.1f} | {m / t_np:.3g} | {flops / t_np / 1e9:.1f} | "
        f"{flops / t_np / 1e9 / rate:.0%} | 1.00x |"
    )
    print("\nScaling in m (d = 64, n = 4096):")
    print("| m | flowax ms | ms per 1000 particles | GFLOP/s |")
    print("|---|---|---|---|")
    for m in (256, 1024) if args.quick else (256, 1024, 4096, 16384, 65536):
        _, t, _, flops = one_size(m, d, n, max(2, args.repeats // 2), with_numpy=False)
        print(f"| {m} | {t * 1e3:.1f} | {t * 1e6 / m:.2f} | {flops / t / 1e9:.1f} |")


if __name__ == "__main__":
    main()
