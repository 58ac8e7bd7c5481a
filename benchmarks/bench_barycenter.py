"""Benchmark: (lambda, tau)-barycenters on fixed supports against POT and ott-jax, in one run.

Problems (float64, cost |x - y|^2 / 2, K = 8 targets, uniform weights, lambda = 1e-3):
  1-D: Gaussian-bump histograms on a grid of n = 2000 points in [0, 1];
  2-D: Gaussian-blob images on a 100 x 100 grid of [0, 1]^2.
Unit conversions (../shared/notes/transport.md): POT's `barycenter` with M = |x - y|^2 / 2 and
reg = lambda; POT's `convolutional_barycenter2d` has kernel exp(-|x - y|^2 / reg): reg = 2 lambda;
ott's `PointCloud(..., epsilon=lambda, scale_cost=2.0)` is cost |x - y|^2 / 2 with epsilon =
lambda, ott's `Grid` (cost |x - y|^2) takes epsilon = 2 lambda.

flowax runs with its default damped Sinkhorn and with overrelaxation=1.5 (same fixed point).
Matched accuracy: flowax (default) stops at marginal error 1e-6 (sum_k w_k |m_k - q_k|_1); twice
its L1 distance to the converged barycenter (flowax, log mode, threshold 1e-13; the peers'
distances to it show they agree) is the target. Every peer stops by its own criterion, with
the largest threshold from a ladder that brings it within the target; its distance is printed.
POT's log-domain method is slow: it runs once, with the threshold found for POT's kernel
method (the same iterates in exact arithmetic). POT's `convolutional_barycenter2d` is run with
stabThr=0: its default stabThr=1e-30 (added inside a log) moves this barycenter by 8e-3 in L1.

Times: "first" is the first call (JAX: compilation + one run), "steady" the best of --repeats
calls after it. Run:  python benchmarks/bench_barycenter.py [--repeats 3]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402
from _timing import timed  # noqa: E402
from flowax import dynamics  # noqa: E402
from ott.geometry import grid as ott_grid  # noqa: E402
from ott.geometry import pointcloud  # noqa: E402
from ott.problems.linear import barycenter_problem  # noqa: E402
from ott.solvers.linear import discrete_barycenter  # noqa: E402

LAM = 1e-3
K = 8
LADDER = [10.0 ** (-e / 2) for e in range(8, 27)]  # 1e-4 ... 1e-13


def l1(a, b):
    a = np.asarray(a, np.float64).ravel()
    return float(np.abs(a / a.sum() - np.asarray(b).ravel()).sum())


def calibrate(make, ref, target):
    """Largest threshold of the ladder whose result is within ``target`` of ``ref``."""
    for thr in LADDER:
        if l1(make(thr)(), ref) <= target:
            return thr
    return LADDER[-1]


def problems(rng, n1=2000, m2=100):
    x = np.linspace(0, 1, n1)
    c, s = rng.uniform(0.25, 0.75, K), rng.uniform(0.03, 0.08, K)
    h1 = np.exp(-0.5 * ((x[None, :] - c[:, None]) / s[:, None]) ** 2) + 1e-12
    t = np.linspace(0, 1, m2)
    xx, yy = np.meshgrid(t, t, indexing="ij")
    c2, s2 = rng.uniform(0.3, 0.7, (K, 2)), rng.uniform(0.05, 0.1, K)
    h2 = np.stack(
        [
            np.exp(-0.5 * ((xx - a) ** 2 + (yy - b) ** 2) / sd**2) + 1e-12
            for (a, b), sd in zip(c2, s2, strict=True)
        ]
    )
    return (x, h1 / h1.sum(1, keepdims=True)), (t, h2 / h2.sum((1, 2), keepdims=True))


def flowax_solver(support, hist, w, tau, thr, mode="auto", max_iterations=5000, omega=1.0):
    f = jax.jit(
        lambda h: dynamics.transport.barycenter_fixed_support(
            support,
            h,
            w,
            lam=LAM,
            tau=tau,
            threshold=thr,
            mode=mode,
            max_iterations=max_iterations,
            overrelaxation=omega,
        )
    )
    h = jnp.asarray(hist)
    return lambda: f(h)


def ott_solver(geom, hist, w, thr, lse_mode):
    solver = discrete_barycenter.FixedBarycenter(
        threshold=thr, lse_mode=lse_mode, max_iterations=5000
    )
    prob = barycenter_problem.FixedBarycenterProblem(geom, jnp.asarray(hist), jnp.asarray(w))
    return lambda: solver(prob).histogram


def report(title, rows, base, fast):
    print(f"\n{title}")
    head = (
        f"{'method':62s} {'first s':>8s} {'steady s':>9s} {'iters':>6s} {'L1 to ref':>10s} "
        f"{'/ flowax':>9s} {'/ flowax w1.5':>14s}"
    )
    print(head)
    print("-" * len(head))
    for name, first, steady, iters, err in rows:
        print(
            f"{name:62s} {first:8.3f} {steady:9.3f} {iters:>6} {err:10.2e} "
            f"{steady / base:8.2f}x {steady / fast:13.2f}x"
        )


def flowax_rows(support, hist, w, ref, ref_half, r):
    """tau = lam (default and over-relaxed) first, tau = lam / 2 rows last."""
    rows, head, tail = [], [], []
    for tau, reference, out_rows in ((LAM, ref, head), (LAM / 2, ref_half, tail)):
        for omega in (1.0, 1.5):
            first, best, out = timed(flowax_solver(support, hist, w, tau, 1e-6, omega=omega), r)
            assert bool(out.converged)
            name = "flowax, tau = lam" if tau == LAM else "flowax, tau = lam/2 (no peer method)"
            name += ", overrelaxation 1.5" if omega != 1 else ""
            out_rows.append((name, first, best, int(out.n_iters), l1(out.histogram, reference)))
    rows.extend(head)
    return rows, tail


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="n = 400, 40 x 40, no POT log run")
    args = parser.parse_args()
    r = 1 if args.quick else args.repeats
    sizes = (400, 40) if args.quick else (2000, 100)
    (x, h1), (t, h2) = problems(np.random.default_rng(0), *sizes)
    w = np.full(K, 1.0 / K)
    print(f"jax {jax.__version__}, POT {ot.__version__}, device {jax.devices()[0].device_kind}")

    # ---------------- 1-D ----------------
    grid1 = dynamics.transport.TensorGrid((jnp.asarray(x),))
    ref = np.asarray(flowax_solver(grid1, h1, w, LAM, 1e-13, mode="log")().histogram)
    ref_half = np.asarray(flowax_solver(grid1, h1, w, LAM / 2, 1e-13, mode="log")().histogram)
    rows, tail = flowax_rows(grid1, h1, w, ref, ref_half, r)
    target = 2 * rows[0][4]
    a = h1.T.copy()
    cost = 0.5 * (x[:, None] - x[None, :]) ** 2

    def pot(thr, method="sinkhorn"):
        return lambda: ot.bregman.barycenter(
            a, cost, LAM, w, method=method, stopThr=thr, numItermax=5000, log=True, warn=False
        )

    thr = calibrate(lambda t_: lambda: pot(t_)()[0], ref, target)
    first, best, (bar, log) = timed(pot(thr), r)
    rows.append(
        (f"POT barycenter (kernel), stopThr {thr:.0e}", first, best, log["niter"], l1(bar, ref))
    )
    if not args.quick:  # about a minute at n = 2000
        first, _, (bar, log) = timed(pot(thr, "sinkhorn_log"), 0)
        name = f"POT barycenter sinkhorn_log, stopThr {thr:.0e} (1 run)"
        rows.append((name, first, first, log["niter"], l1(bar, ref)))
    geom = pointcloud.PointCloud(x[:, None], x[:, None], epsilon=LAM, scale_cost=2.0)
    for lse in (False, True):
        thr = calibrate(lambda t_, lse=lse: ott_solver(geom, a.T, w, t_, lse), ref, target)
        first, best, bar = timed(ott_solver(geom, a.T, w, thr, lse), r)
        name = f"ott FixedBarycenter ({'log' if lse else 'kernel'}), threshold {thr:.0e}"
        rows.append((name, first, best, "", l1(bar, ref)))
    title = f"1-D: K = {K} histograms, n = {len(x)}, lambda = {LAM}, float64"
    report(title, rows + tail, rows[0][2], rows[1][2])

    # ---------------- 2-D ----------------
    grid2 = dynamics.transport.TensorGrid((jnp.asarray(t), jnp.asarray(t)))
    ref = np.asarray(flowax_solver(grid2, h2, w, LAM, 1e-13, mode="log")().histogram)
    ref_half = np.asarray(flowax_solver(grid2, h2, w, LAM / 2, 1e-13, mode="log")().histogram)
    rows, tail = flowax_rows(grid2, h2, w, ref, ref_half, r)
    target = 2 * rows[0][4]

    def conv(thr):
        return lambda: ot.bregman.convolutional_barycenter2d(
            h2, 2 * LAM, w, stopThr=thr, stabThr=0.0, numItermax=5000, log=True, warn=False
        )

    thr = calibrate(lambda t_: lambda: conv(t_)()[0], ref, target)
    first, best, (bar, log) = timed(conv(thr), r)
    name = f"POT convolutional_barycenter2d, stopThr {thr:.0e}"
    rows.append((name, first, best, log["niter"] + 1, l1(bar, ref)))
    geom = ott_grid.Grid(x=[jnp.asarray(t), jnp.asarray(t)], epsilon=2 * LAM)
    flat = h2.reshape(K, -1)
    for lse in (False, True):
        thr = calibrate(lambda t_, lse=lse: ott_solver(geom, flat, w, t_, lse), ref, target)
        first, best, bar = timed(ott_solver(geom, flat, w, thr, lse), r)
        name = f"ott FixedBarycenter on its Grid ({'log' if lse else 'kernel'}), thr {thr:.0e}"
        rows.append((name, first, best, "", l1(bar, ref)))
    first, _, out = timed(flowax_solver(grid2.points, flat, w, LAM, 1e-6, mode="kernel"), 0)
    name = "flowax, tau = lam, the grid as a point cloud (dense, 1 run)"
    rows.append((name, first, first, int(out.n_iters), l1(out.histogram, ref)))
    title = f"2-D: K = {K} images, {len(t)} x {len(t)}, lambda = {LAM}, float64"
    report(title, rows + tail, rows[0][2], rows[1][2])
    print("(tau = lam/2 rows: L1 to the tau = lam/2 barycenter)")

    # ---------------- scaling ----------------
    print("\nTime per iteration on m x m grids (50 iterations, kernel mode, tau = lam):")
    print(f"{'m':>5s} {'N':>7s} {'separable ms':>13s} {'dense ms':>9s} {'dense/separable':>16s}")
    for m in (25, 50) if args.quick else (25, 50, 100, 200):
        tm = jnp.linspace(0, 1, m)
        g = dynamics.transport.TensorGrid((tm, tm))
        hm = jax.image.resize(jnp.asarray(h2), (K, m, m), "linear")
        hm = hm / hm.sum((1, 2), keepdims=True)
        _, sep, _ = timed(flowax_solver(g, hm, w, LAM, 0.0, "kernel", 50), r)
        if m <= 100:
            flat = hm.reshape(K, -1)
            _, den, _ = timed(flowax_solver(g.points, flat, w, LAM, 0.0, "kernel", 50), 1)
            print(f"{m:5d} {m * m:7d} {sep / 50e-3:13.3f} {den / 50e-3:9.2f} {den / sep:15.1f}x")
        else:
            print(f"{m:5d} {m * m:7d} {sep / 50e-3:13.3f} {'(12.8 GB)':>9s}")


if __name__ == "__main__":
    main()
