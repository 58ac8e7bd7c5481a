"""Benchmark: Hessian eigenvalues, spectral densities and sharpness tracking, flowax beside
matfree, jax's LOBPCG, scipy's ARPACK and dense eigh, in one run.

Every solver gets the same jitted Hessian-vector product (forward-over-reverse) of an MSE loss.

1. Top eigenvalue and top-5 on three problems:
   * ``mlp20k``: a tanh MLP 16-128-128-1 (18.7k parameters) on 256 points, at initialization;
     the reference is flowax's Lanczos with 120 steps, cross-checked by scipy at tol 1e-10;
   * ``mlp400``: a tanh MLP 8-16-16-1 (433 parameters), where a dense ``eigh`` of
     ``jax.hessian`` is the truth (and a peer: its time is the dense route's);
   * ``chain``: the scalar deep linear chain of depth 100 at a minimizer, whose Hessian is rank
     one with top eigenvalue ``2 sigma^2 w*^2 sum_l 1/w_l^2`` (closed form).
   For each method and problem: the number of Hessian-vector products (the Krylov size m from a
   ladder) needed to reach the top-k eigenvalues within 1e-3 relative for the worst of 10
   random starts, and the time of one solve at that m (compiled once; steady state, min of
   --repeats). LOBPCG counts k products per iteration plus k for the start block; scipy's eigsh
   (ARPACK over the jitted HVP, tol 1e-4: a user's by-hand route) counts what ARPACK chose.
2. Stochastic Lanczos quadrature at a fixed budget: a spiked Wishart matrix (n = 1000; bulk
   Marchenko-Pastur, 3 outliers), Wasserstein-1 distance between the SLQ measure and the exact
   spectrum relative to the spectral width, for budgets probes x steps, and its time vs a dense
   ``eigh``.
3. Tracking along 1000 real GD steps (the ``mlp20k`` net, lr = 1 / sharpness, 100 saves): the
   extra cost per save of a cold Lanczos observable (30 steps) vs `track_sharpness`'s warm
   update (5 steps), over plain GD, and the largest difference between the two tracks.
4. The HVP time over a gradient's time (the floor: an HVP costs about 2-3 gradients).

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
from flowax import dynamics, kernels, models  # noqa: E402
from jax.experimental.sparse.linalg import lobpcg_standard  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

LADDER = (3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80)
QUICK_LADDER = (5, 10, 15, 25, 35, 50)


def mlp_problem(width, d_in, n_points):
    model = models.mlp([d_in, width, width, 1], activation="tanh")
    x = jax.random.normal(jax.random.key(0), (n_points, d_in))
    y = jnp.sin(x[:, :1] + x[:, 1:2])

    def loss(p):
        return jnp.mean((model.apply(p, x) - y) ** 2)

    return loss, model.init(jax.random.key(1))


def chain_problem(depth, n=40):
    """The scalar chain f(x) = w_1 ... w_L x at a minimizer (product = w*): its Hessian is
    2 sigma^2 g g^T with g_l = w* / w_l, top eigenvalue 2 sigma^2 w*^2 sum 1/w_l^2."""
    kx, kn, kw = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (n,))
    y = 1.3 * x + 0.1 * jax.random.normal(kn, (n,))
    sigma2 = jnp.mean(x**2)
    w_star = jnp.mean(x * y) / sigma2
    w = jnp.exp(0.1 * jax.random.normal(kw, (depth,)))
    w = w * (w_star / jnp.prod(w)) ** (1.0 / depth)  # exact minimizer, unbalanced

    def loss(p):
        return jnp.mean((jnp.prod(p) * x - y) ** 2)

    exact = 2 * sigma2 * w_star**2 * jnp.sum(1.0 / w**2)
    return loss, w, float(exact)


def flat_hvp(loss, params):
    flat, unravel = ravel_pytree(params)
    return jax.jit(lambda v: ravel_pytree(kernels.hvp(loss, params, unravel(v)))[0]), flat


def solvers(mv, flat, k):
    """``{name: (make(m) -> jitted f(v0) -> top-k values descending, products(m))}``."""
    import matfree.decomp as mfd

    def flowax_make(m):
        return jax.jit(
            lambda v0: (
                kernels.top_eigenpairs(
                    None, flat, k=k, num_iters=m, key=jax.random.key(0), v0=v0, operator=mv
                ).values
            )
        )

    def matfree_make(m):
        decompose = mfd.tridiag_sym(m, reortho="full", custom_vjp=False)

        @jax.jit
        def f(v0):
            res = decompose(mv, v0 / jnp.linalg.norm(v0))
            return jnp.linalg.eigvalsh(res.J_small)[::-1][:k]

        return f

    def lobpcg_make(m):
        # the start block: v0 and k - 1 more columns drawn from it
        @jax.jit
        def f(v0):
            extra = jax.random.normal(jax.random.key(5), (v0.shape[0], k - 1))
            block = jnp.concatenate([v0[:, None], extra], axis=1)
            return lobpcg_standard(jax.vmap(mv, 1, 1), block, m=m)[0]

        return f

    return {
        # flowax also spends k products on the residuals
        "flowax top_eigenpairs": (flowax_make, lambda m: m + k),
        "matfree tridiag_sym(full)": (matfree_make, lambda m: m),
        "jax lobpcg_standard": (lobpcg_make, lambda m: k * (m + 1)),
    }


def ladder_row(make, products, starts, ref, repeats):
    k = int(np.size(ref))
    for m in [m for m in LADDER if m >= k]:  # noqa: B007 (m is used after the loop)
        f = make(m)
        start = time.perf_counter()
        jax.block_until_ready(f(starts[0]))
        first = time.perf_counter() - start
        worst = max(float(jnp.max(jnp.abs(f(v0) - ref) / jnp.abs(ref))) for v0 in starts)
        if worst <= 1e-3:
            break
    _, best, _ = timed(lambda: f(starts[0]), repeats)
    return products(m), worst, first - best, best


def scipy_row(mv, n, k, starts, ref):
    count = [0]

    def counted(v):
        count[0] += 1
        return np.asarray(mv(jnp.asarray(v)))

    op = sla.LinearOperator((n, n), matvec=counted, dtype=float)
    worst, times, counts = 0.0, [], []
    for v0 in starts:
        count[0] = 0
        start = time.perf_counter()
        vals = np.sort(sla.eigsh(op, k=k, which="LA", tol=1e-4, v0=np.asarray(v0))[0])[::-1]
        times.append(time.perf_counter() - start)
        counts.append(count[0])
        worst = max(worst, float(np.max(np.abs(vals - ref) / np.abs(ref))))
    return max(counts), worst, float("nan"), min(times)


def eigen_table(name, loss, params, k, ref, seeds, repeats, dense=False):
    mv, flat = flat_hvp(loss, params)
    n = flat.shape[0]
    starts = [jax.random.normal(jax.random.key(100 + s), (n,)) for s in range(seeds)]
    rows = []
    for label, (make, products) in solvers(mv, flat, k).items():
        if label.startswith("jax lobpcg") and 5 * k >= n:
            continue  # LOBPCG needs n >= 5 k
        rows.append((label, *ladder_row(make, products, starts, ref, repeats)))
    rows.append(("scipy eigsh(which='LA', tol=1e-4)", *scipy_row(mv, n, k, starts, ref)))
    if dense:

        @jax.jit
        def dense_top():
            h = jax.hessian(lambda v: loss(ravel_pytree(params)[1](v)))(flat)
            return jnp.linalg.eigvalsh(h)[::-1][:k]

        first, best, vals = timed(dense_top, repeats)
        err = float(jnp.max(jnp.abs(vals - ref) / jnp.abs(ref)))
        rows.append(("dense jax.hessian + eigh", n, err, first - best, best))
    base = rows[0][4]
    print(f"\n### {name}: top-{k}, {n} parameters ({seeds} random starts)")
    print("| method | HVPs to 1e-3 (worst) | worst rel err | compile s | steady ms | vs flowax |")
    print("|---|---|---|---|---|---|")
    for label, hvps, err, comp, t in rows:
        comp_s = f"{comp:.2f}" if np.isfinite(comp) else ""
        print(f"| {label} | {hvps} | {err:.1e} | {comp_s} | {t * 1e3:.2f} | {t / base:.2f}x |")
    return mv, flat


def warm_vs_cold(mv, flat, ref, repeats):
    v_top = kernels.top_eigenpairs(
        None, flat, k=1, num_iters=60, key=jax.random.key(3), operator=mv
    ).vectors[0]
    n = flat.shape[0]
    perturbed = v_top + 0.05 * jax.random.normal(jax.random.key(4), (n,)) / np.sqrt(n)
    make = solvers(mv, flat, 1)["flowax top_eigenpairs"][0]
    for m in (2, 3, 4, 5, 8):  # the fewest warm steps that reach 1e-3
        warm = make(m)
        if abs(float(warm(perturbed)[0]) - ref) / abs(ref) <= 1e-3:
            break
    _, best, val = timed(lambda: warm(perturbed), repeats)
    return m + 1, abs(float(val[0]) - ref) / abs(ref), best


def slq_table(n, budgets, repeats):
    """Spiked Wishart: W = X^T X / p (bulk MP with ratio n/p = 0.5) + outliers 8, 10, 12."""
    kx, kq = jax.random.split(jax.random.key(7))
    p = 2 * n
    x = jax.random.normal(kx, (p, n))
    q = jnp.linalg.qr(jax.random.normal(kq, (n, 3)))[0]
    a = x.T @ x / p + (q * jnp.array([8.0, 10.0, 12.0])) @ q.T
    exact = np.sort(np.asarray(jnp.linalg.eigvalsh(a)))
    width = exact[-1] - exact[0]
    _, t_dense, _ = timed(jax.jit(lambda: jnp.linalg.eigvalsh(a)), repeats)
    print(
        f"\n### SLQ at a fixed budget: spiked Wishart, n = {n} (dense eigh {t_dense * 1e3:.1f} ms)"
    )
    print("| probes x Lanczos steps | matvecs | W1 / spectral width | Jackson-type bound | ms |")
    print("|---|---|---|---|---|")
    for probes, m in budgets:
        f = jax.jit(
            lambda: kernels.spectral_density(
                None,
                jnp.zeros(n),
                key=jax.random.key(8),
                num_probes=probes,
                num_iters=m,
                operator=lambda v: a @ v,
            )
        )
        _, best, dens = timed(f, repeats)
        nodes = np.asarray(dens.nodes).ravel()
        weights = np.asarray(dens.weights).ravel() / probes
        w1 = wasserstein1(nodes, weights, exact)
        bound = np.pi / (2 * m) + 1 / np.sqrt(n * probes)
        print(
            f"| {probes} x {m} | {probes * m} | {w1 / width:.4f} | {bound:.4f} | {best * 1e3:.1f} |"
        )


def wasserstein1(nodes, weights, exact):
    """W1 between a weighted point measure and the uniform measure on ``exact`` (CDF areas)."""
    pts = np.concatenate([nodes, exact])
    mass = np.concatenate([weights, -np.full(exact.shape, 1.0 / exact.size)])
    order = np.argsort(pts)
    cdf = np.cumsum(mass[order])[:-1]
    return float(np.sum(np.abs(cdf) * np.diff(pts[order])))


def tracking_table(loss, params, steps, every, repeats, lr):
    save = np.arange(0, steps + 1, every)
    plain = jax.jit(
        lambda p: (
            dynamics.iterate(
                dynamics.descent_step(loss, lr=lr), p, steps=steps, save_steps=save, observables={}
            ).final
        )
    )
    cold = jax.jit(
        lambda p: dynamics.iterate(
            dynamics.descent_step(loss, lr=lr),
            p,
            steps=steps,
            save_steps=save,
            observables={
                "s": lambda t, q: kernels.sharpness(loss, q, key=jax.random.key(3), num_iters=30)
            },
        ).values["s"]
    )
    warm = jax.jit(
        lambda p: dynamics.iterate(
            kernels.track_sharpness(
                dynamics.descent_step(loss, lr=lr), loss, key=jax.random.key(2), every=every
            ),
            p,
            steps=steps,
            save_steps=save,
            observables={"s": lambda t, s: s.sharpness},
        ).values["s"]
    )
    _, t_plain, _ = timed(lambda: plain(params), repeats)
    _, t_cold, s_cold = timed(lambda: cold(params), repeats)
    _, t_warm, s_warm = timed(lambda: warm(params), repeats)
    saves = save.size
    per_cold = (t_cold - t_plain) / saves
    per_warm = (t_warm - t_plain) / saves
    diff = float(jnp.max(jnp.abs(s_warm - s_cold) / jnp.abs(s_cold)))
    print(
        f"\n### Sharpness along {steps} GD steps, {saves} saves (plain GD {t_plain * 1e3:.1f} ms)"
    )
    print("| observable | total ms | extra ms per save | per save vs warm |")
    print("|---|---|---|---|")
    print(
        f"| cold Lanczos (30 steps) | {t_cold * 1e3:.1f} | {per_cold * 1e3:.3f} | "
        f"{per_cold / per_warm:.2f}x |"
    )
    print(f"| track_sharpness warm (5 steps) | {t_warm * 1e3:.1f} | {per_warm * 1e3:.3f} | 1.00x |")
    print(
        f"largest |warm - cold| / cold over the saves: {diff:.1e}; "
        f"sharpness {float(s_cold[0]):.3f} -> {float(s_cold[-1]):.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smaller nets, 3 starts, 3 repeats")
    args = parser.parse_args()
    global LADDER
    if args.quick:
        args.repeats = min(args.repeats, 3)
        LADDER = QUICK_LADDER
    width, seeds = (32, 2) if args.quick else (128, 10)
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}")

    loss, params = mlp_problem(width, 16, 256)
    mv, flat = flat_hvp(loss, params)
    ref = kernels.top_eigenpairs(
        None, flat, k=5, num_iters=120, key=jax.random.key(9), operator=mv
    ).values
    n = flat.shape[0]
    op = sla.LinearOperator((n, n), matvec=lambda v: np.asarray(mv(jnp.asarray(v))), dtype=float)
    ref_scipy = np.sort(sla.eigsh(op, k=5, which="LA", tol=1e-10)[0])[::-1]
    print(
        f"mlp{n}: reference top-5 {np.round(np.asarray(ref), 6).tolist()} (scipy tol 1e-10: "
        f"max rel diff {float(np.max(np.abs(ref_scipy - ref) / np.abs(ref))):.1e})"
    )
    _, t_hvp, _ = timed(lambda: mv(flat), args.repeats)
    grad = jax.jit(jax.grad(loss))
    _, t_grad, _ = timed(lambda: grad(params), args.repeats)
    print(
        f"HVP {t_hvp * 1e3:.3f} ms, gradient {t_grad * 1e3:.3f} ms: HVP / grad = "
        f"{t_hvp / t_grad:.2f}"
    )
    eigen_table(f"mlp{n}", loss, params, 1, ref[:1], seeds, args.repeats)
    # warm update of the tracking, on the same problem
    hvps, err, t_warm = warm_vs_cold(mv, flat, float(ref[0]), args.repeats)
    print(
        f"| flowax warm update ({hvps - 1} steps from a nearby eigenvector) | {hvps} | "
        f"{err:.1e} | | {t_warm * 1e3:.2f} | |"
    )
    if not args.quick:
        eigen_table(f"mlp{n}", loss, params, 5, ref, seeds, args.repeats)
    tracking_table(
        loss, params, 200 if args.quick else 1000, 10, min(args.repeats, 3), 1.0 / float(ref[0])
    )

    loss_s, params_s = mlp_problem(16, 8, 64)
    h = jax.hessian(lambda v: loss_s(ravel_pytree(params_s)[1](v)))(ravel_pytree(params_s)[0])
    dense = jnp.linalg.eigvalsh(h)[::-1]
    n_s = ravel_pytree(params_s)[0].shape[0]
    for k in (1,) if args.quick else (1, 5):
        eigen_table(
            f"mlp{n_s} (truth: dense eigh)",
            loss_s,
            params_s,
            k,
            dense[:k],
            seeds,
            args.repeats,
            dense=True,
        )

    loss_c, w, exact = chain_problem(100)
    eigen_table(
        "deep linear chain, depth 100, at a minimizer (closed form)",
        loss_c,
        w,
        1,
        jnp.array([exact]),
        seeds,
        args.repeats,
    )

    slq_table(
        300 if args.quick else 1000,
        [(4, 20), (10, 30)] if args.quick else [(4, 20), (10, 30), (10, 60), (40, 60)],
        args.repeats,
    )
    print("\n'vs flowax': that method's time over flowax's (higher: flowax faster).")


if __name__ == "__main__":
    main()
