"""Benchmark: the top Hessian eigenvalue (sharpness) by flowax, matfree and scipy, in one run.

Problem: a tanh MLP 16-128-128-1 (18.7k parameters) on 256 points, MSE, at its initialization;
every solver gets the same jitted Hessian-vector product (forward-over-reverse). The reference
is flowax's Lanczos with 120 steps, cross-checked against scipy's `eigsh(which="LA")` at
tol 1e-10. For each method: the number of Hessian-vector products (Krylov steps m, from a ladder)
needed to reach the top eigenvalue within 1e-3 relative for the worst of 10 random starts, and
the time of one solve at that m (compiled once; steady state, min of --repeats). scipy's
eigsh runs ARPACK over the jitted HVP with tol 1e-4 (a user's by-hand route; its matvec count
is what ARPACK chose). Also: the HVP time over a gradient's time (the floor: an HVP costs about
2-3 gradients), and tracking along training: a warm-started update (the fewest Lanczos steps
from a nearby vector -- the top eigenvector plus noise of norm 0.05, standing in for one save's
drift -- that reach 1e-3) against a cold solve.

Run:  python benchmarks/bench_curvature.py [--repeats 20] [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402
from _timing import timed  # noqa: E402
from flowax import kernels, models  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

LADDER = (5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a 16-32-32-1 net, 3 starts")
    args = parser.parse_args()
    width, seeds = (32, 3) if args.quick else (128, 10)
    model = models.mlp([16, width, width, 1], activation="tanh")
    x = jax.random.normal(jax.random.key(0), (256, 16))
    y = jnp.sin(x[:, :1] + x[:, 1:2])
    params = model.init(jax.random.key(1))
    flat, unravel = ravel_pytree(params)
    n = flat.shape[0]

    def loss(p):
        return jnp.mean((model.apply(p, x) - y) ** 2)

    mv = jax.jit(lambda v: ravel_pytree(kernels.hvp(loss, params, unravel(v)))[0])
    grad = jax.jit(lambda p: jax.grad(loss)(p))
    _, t_hvp, _ = timed(lambda: mv(flat), args.repeats)
    _, t_grad, _ = timed(lambda: grad(params), args.repeats)

    ref = float(kernels.sharpness(None, flat, key=jax.random.key(9), num_iters=120, operator=mv))
    op = sla.LinearOperator((n, n), matvec=lambda v: np.asarray(mv(jnp.asarray(v))), dtype=float)
    ref_scipy = float(sla.eigsh(op, k=1, which="LA", tol=1e-10)[0][0])
    print(f"jax {jax.__version__}, {n} parameters, {jax.devices()[0].device_kind}")
    print(f"reference sharpness {ref:.10g} (scipy eigsh tol 1e-10: {ref_scipy:.10g})")
    print(
        f"HVP {t_hvp * 1e3:.2f} ms, gradient {t_grad * 1e3:.2f} ms: HVP / grad = "
        f"{t_hvp / t_grad:.2f}"
    )

    import matfree.decomp as mfd

    starts = [jax.random.normal(jax.random.key(100 + s), (n,)) for s in range(seeds)]

    def flowax_solver(m):
        f = jax.jit(
            lambda v0: kernels.top_eigenpairs(
                None, flat, k=1, num_iters=m, key=jax.random.key(0), v0=v0, operator=mv
            ).values[0]
        )
        return f

    def matfree_solver(m):
        decompose = mfd.tridiag_sym(m, reortho="full", custom_vjp=False)

        @jax.jit
        def f(v0):
            res = decompose(lambda v: mv(v), v0 / jnp.linalg.norm(v0))
            return jnp.linalg.eigvalsh(res.J_small)[-1]

        return f

    rows = []
    for name, make in (
        ("flowax top_eigenpairs", flowax_solver),
        ("matfree tridiag_sym", matfree_solver),
    ):
        for m in LADDER:
            f = make(m)
            t0 = time.perf_counter()
            jax.block_until_ready(f(starts[0]))
            first = time.perf_counter() - t0
            worst = max(abs(float(f(v0)) - ref) / abs(ref) for v0 in starts)
            if worst <= 1e-3:
                break
        _, best, _ = timed(lambda f=f: f(starts[0]), args.repeats)
        # flowax also spends 1 product on the residual
        hvps = m + 1 if name.startswith("flowax") else m
        rows.append((name, hvps, worst, first - best, best))

    count = [0]

    def counted(v):
        count[0] += 1
        return np.asarray(mv(jnp.asarray(v)))

    opc = sla.LinearOperator((n, n), matvec=counted, dtype=float)
    worst, times, counts = 0.0, [], []
    for v0 in starts:
        count[0] = 0
        start = time.perf_counter()
        val = sla.eigsh(opc, k=1, which="LA", tol=1e-4, v0=np.asarray(v0))[0][0]
        times.append(time.perf_counter() - start)
        counts.append(count[0])
        worst = max(worst, abs(val - ref) / abs(ref))
    rows.append(
        (
            "scipy eigsh(which='LA', tol=1e-4) over the jitted HVP",
            max(counts),
            worst,
            float("nan"),
            min(times),
        )
    )

    # tracking: a warm update from the current top eigenvector vs a cold solve
    v_top = kernels.top_eigenpairs(
        None, flat, k=1, num_iters=60, key=jax.random.key(3), operator=mv
    ).vectors[0]
    perturbed = v_top + 0.05 * jax.random.normal(jax.random.key(4), (n,)) / np.sqrt(n)
    for m in (2, 3, 4, 5, 8):  # the fewest warm steps that reach 1e-3
        warm = flowax_solver(m)
        if abs(float(warm(perturbed)) - ref) / abs(ref) <= 1e-3:
            break
    first, best_warm, val = timed(lambda: warm(perturbed), args.repeats)
    name = f"flowax warm update ({m} steps from a nearby eigenvector)"
    rows.append((name, m + 1, abs(float(val) - ref) / abs(ref), first - best_warm, best_warm))

    base = rows[0][4]
    print(
        f"\n| method | HVPs | worst rel err ({seeds} starts) | compile s | steady ms | vs flowax |"
    )
    print("|---|---|---|---|---|---|")
    for name, hvps, err, comp, t in rows:
        comp_s = f"{comp:.2f}" if np.isfinite(comp) else ""
        print(f"| {name} | {hvps} | {err:.1e} | {comp_s} | {t * 1e3:.2f} | {t / base:.2f}x |")
    print("'vs flowax': that method's time over flowax's cold solve (higher: flowax faster).")


if __name__ == "__main__":
    main()
