"""Flat minima of deep linear regression: gradient flow from a small initialization finds a
minimizer whose sharpness stays within a constant of the lower bound, at every depth.

Overdetermined univariate regression, ``n = 40`` points in ``d = 5`` dimensions (data covariance
``Sigma`` with condition number 10), a deep linear network ``f(x) = x W_1 ... W_L`` of width 5
and depth ``L = 2..16``, loss ``(1/n) sum_i (f(x_i) - y_i)^2``. Marion and Chizat (2024, "Deep
linear networks for regression are implicitly regularized towards flat minima") show that every
minimizer has sharpness (top Hessian eigenvalue) at least

    S_min(L) = 2 L a ||w*||^(2 - 2/L),   a = w*^T Sigma w* / ||w*||^2,

(``w*`` the least-squares solution), which grows linearly in the depth, and that gradient flow
from a small-scale initialization reaches a minimizer within a constant of it (the constant
depends on the data's condition number, not on the width or depth): the learned matrices are
close to rank one and aligned. For each depth, a `sweep` over 3 seeds runs `gradient_flow`
to convergence from a small initialization (per-layer scale ``10^(-3/L)``, so that the
end-to-end map starts at norm ~1e-3 at every depth) and from the standard scale 1, and measures
the sharpness of the minimizer found by Lanczos (`flowax.kernels.sharpness`). Beside them: the
bound, and the sharpness of the balanced rank-one minimizer ``W_l = s u_l u_{l+1}^T``, ``s =
||w*||^(1/L)`` (the limit the small initialization approaches), computed the same way.

Second panel: gradient descent at depth 4 from the same small initialization, at steps below
and above the critical step ``eta_c = 2 / S_min``: above it no minimizer is linearly stable
(all have sharpness > 2/eta), so GD cannot converge, whatever the initialization: here it
settles on an oscillation instead.

Run:  python examples/flat_minima.py [--out flat_minima.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics, kernels, models  # noqa: E402

D, N, WIDTH = 5, 40, 5
DEPTHS = (2, 4, 8, 16)
SEEDS = 3
T1 = 100.0
GD_DEPTH, GD_STEPS, GD_FACTORS = 4, 4000, (0.8, 1.1)


def data():
    kx, kn = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (N, D)) * jnp.array([1.6, 1.2, 1.0, 0.8, 0.6])
    y = x @ jnp.array([1.0, -0.5, 0.8, 0.3, -0.6]) + 0.1 * jax.random.normal(kn, (N,))
    sigma = x.T @ x / N
    w_star = jnp.linalg.solve(sigma, x.T @ y / N)
    return x, y, sigma, w_star


def balanced_rank_one(w_star, depth):
    """``W_1 = s v u^T``, ``W_l = s u u^T``, ``W_L = s u``: end-to-end ``s^L v = w*``."""
    s = jnp.linalg.norm(w_star) ** (1.0 / depth)
    v = w_star / jnp.linalg.norm(w_star)
    u = jnp.ones(WIDTH) / jnp.sqrt(WIDTH)
    mats = [s * jnp.outer(v, u)] + [s * jnp.outer(u, u)] * (depth - 2) + [s * u[:, None]]
    return tuple({"w": m} for m in mats)


def main():
    args = parse_args(__doc__, "flat_minima.png")
    x, y, sigma, w_star = data()
    eig = jnp.linalg.eigvalsh(sigma)
    a = w_star @ sigma @ w_star / (w_star @ w_star)
    loss_min = jnp.mean((x @ w_star - y) ** 2)
    norm = jnp.linalg.norm(w_star)
    bound = {L: float(2 * L * a * norm ** (2 - 2 / L)) for L in DEPTHS}

    rows, start = [], time.perf_counter()
    with progress(len(DEPTHS) + 1, args, "depths") as bar:
        for L in DEPTHS:
            model = models.deep_linear([D] + [WIDTH] * (L - 1) + [1])

            def loss(p, model=model):
                return jnp.mean((model.apply(p, x)[:, 0] - y) ** 2)

            def run(point, model=model, loss=loss):
                p0 = model.init(
                    jax.random.fold_in(jax.random.key(1), point["seed"]), point["scale"]
                )
                traj = dynamics.gradient_flow(
                    loss, p0, t1=T1, n_save=2, observables={}, max_steps=100_000
                )
                s = kernels.sharpness(loss, traj.final, key=jax.random.key(2), num_iters=40)
                return s, loss(traj.final) - loss_min, traj.stats.status

            small = 10.0 ** (-3.0 / L)
            grid = dynamics.product_grid(scale=np.array([small, 1.0]), seed=np.arange(SEEDS))
            # One chunk per scale (lanes of one scale have similar stiffness); batching "auto":
            # each lane its own solve on CPU cores, one fused solve per chunk on accelerators.
            s, excess, status = dynamics.sweep(run, grid, chunk_size=SEEDS, progress=False)
            s = np.asarray(s).reshape(2, SEEDS)
            if np.any(np.asarray(status) != 0) or float(np.max(excess)) > 1e-6:
                raise RuntimeError(f"depth {L}: gradient flow did not converge ({excess=})")
            s_bal = float(
                kernels.sharpness(
                    loss, balanced_rank_one(w_star, L), key=jax.random.key(3), num_iters=40
                )
            )
            rows.append((L, bound[L], s_bal, s[0], s[1]))
            bar.update()

        # GD below / above the critical step, depth 4, small init.
        model = models.deep_linear([D] + [WIDTH] * (GD_DEPTH - 1) + [1])

        def loss4(p):
            return jnp.mean((model.apply(p, x)[:, 0] - y) ** 2)

        p0 = model.init(jax.random.key(1), 10.0 ** (-3.0 / GD_DEPTH))
        eta_c = 2.0 / bound[GD_DEPTH]
        gd = {
            f: dynamics.gradient_descent(
                loss4,
                p0,
                steps=GD_STEPS,
                lr=f * eta_c,
                n_save=GD_STEPS + 1,
                observables={"excess": lambda t, p: loss4(p) - loss_min},
            )
            for f in GD_FACTORS
        }
        bar.update()
    elapsed = time.perf_counter() - start

    print(
        f"a = {float(a):.3f}, lambda_max(Sigma) = {float(eig[-1]):.3f}, "
        f"kappa = {float(eig[-1] / eig[0]):.1f}, ||w*|| = {float(norm):.3f}"
    )
    print(" L | bound S_min | balanced rank-one | small init (3 seeds) | scale 1 (3 seeds)")
    for L, b, sb, s_small, s_one in rows:
        print(
            f"{L:2d} | {b:11.2f} | {sb:8.2f} ({sb / b:.2f}x) | "
            f"{s_small.mean():8.2f} ({s_small.max() / b:.2f}x max) | "
            f"{s_one.mean():8.2f} ({s_one.max() / b:.2f}x max)"
        )
    for f, traj in gd.items():
        ex = np.asarray(traj.values["excess"])
        print(
            f"GD depth {GD_DEPTH}, eta = {f:.1f} eta_c: excess loss over the last two steps "
            f"{ex[-2]:.2e}, {ex[-1]:.2e} (min over the run {np.nanmin(ex):.2e})"
        )
    print(f"total {elapsed:.1f} s")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    depths = np.array([r[0] for r in rows])
    fine = np.linspace(2, DEPTHS[-1], 100)
    ax.plot(
        fine,
        2 * fine * float(a) * float(norm) ** (2 - 2 / fine),
        "k-",
        lw=1.5,
        label=r"lower bound $2La\|w^\star\|^{2-2/L}$",
    )
    ax.plot(depths, [r[2] for r in rows], "k--", lw=1, label="balanced rank-one minimizer")
    for i, (name, c, m) in enumerate((("small init", "C0", "o"), ("init scale 1", "C3", "s"))):
        vals = np.array([r[3 + i] for r in rows])
        for j in range(SEEDS):
            ax.plot(
                depths,
                vals[:, j],
                m,
                color=c,
                alpha=0.7,
                ms=5,
                label=f"gradient flow, {name}" if j == 0 else None,
            )
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel("sharpness of the minimizer found")
    ax.set_title("Gradient flow finds flat minima (Marion & Chizat 2024)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    for f, traj in gd.items():
        ex = np.asarray(traj.values["excess"])
        bx.semilogy(
            np.asarray(traj.ts) / float(f * eta_c),
            np.maximum(np.abs(ex), 1e-16),
            lw=0.8,
            label=rf"GD, $\eta$ = {f:.1f} $\eta_c$",
        )
    bx.set_xlim(0, 800)
    bx.set_xlabel("step (the rest of the 4000 steps look the same)")
    bx.set_ylabel("loss - min loss")
    bx.set_title(rf"Depth {GD_DEPTH}: GD above $\eta_c = 2/S_{{min}}$ cannot converge")
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
