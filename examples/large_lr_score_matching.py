"""Large learning rates in denoising score matching prevent memorization (after Wu, Marion, Biau
& Boyer 2025, "Taking a big step: large learning rates in denoising score matching prevent
memorization").

Data: n = 12 points in [-2, 2] (evenly spread, jittered). At one noise level sigma = 0.2 (the
variance-exploding process at t = sigma^2) the empirical optimal score s* (exact,
`flowax.dynamics.diffusion.empirical_score`) is a sharp staircase: slope -1/sigma^2 near each
training point and a jump between neighbours. A two-layer ReLU score network in mean-field
scaling, s_theta(y) = (1/m) sum_j a_j relu(w_j y + b_j), m = 128, is trained by SGD on fresh
noise (`dsm_loss` with per-step keys as `gradient_descent` batches, optax SGD at step m eta, the
mean-field scaling under which each neuron moves O(eta)). Five learning rates are one `jax.vmap`.

Fitting s* means a sharp minimum: the linear stability of (S)GD at step m eta requires the
sharpness (top Hessian eigenvalue of the DSM risk, `flowax.kernels.sharpness`: Lanczos on HVPs)
to stay below 2 / (m eta). Small steps fit the staircase (small excess risk R(s) - R(s*), i.e.
memorization); large steps cannot sit in sharp minima and learn a smooth score close to the
Gaussian fit -(y - mean)/(var + sigma^2). Excess risks are Monte Carlo (`excess_risk`, with
standard errors); the sharpness is that of the risk on a fixed noise sample of 12 x 200 draws.

Run:  python examples/large_lr_score_matching.py [--out large_lr_score_matching.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics, kernels, models  # noqa: E402
from flowax.dynamics import diffusion  # noqa: E402

SIGMA = 0.2
PROC = diffusion.VarianceExploding(T=1.0)
T = SIGMA**2
M, N, STEPS, N_NOISE = 128, 12, 200_000, 8
ETAS = jnp.array([0.001, 0.002, 0.003, 0.005, 0.007])


def main():
    args = parse_args(__doc__, "large_lr_score_matching.png")
    spread = jnp.linspace(-2.0, 2.0, N)[:, None]
    data = spread + 0.1 * jax.random.normal(jax.random.key(0), (N, 1))
    net = models.two_layer(M, d_in=1, parametrization="mean_field", bias_std=1.0)
    params0 = net.init(jax.random.key(1))
    loss = diffusion.dsm_loss(net, data, PROC, t=T, n_noise=N_NOISE)
    star = diffusion.empirical_score(data, PROC)
    fit = diffusion.gaussian_score(jnp.mean(data, 0), jnp.var(data) * jnp.eye(1), PROC)
    keys = jax.random.split(jax.random.key(2), STEPS)

    # the risk on a fixed noise sample (deterministic: its Hessian is well defined)
    z = jax.random.normal(jax.random.key(3), (200, N, 1))
    y_fixed = (data[None] + SIGMA * z).reshape(-1, 1)

    def fixed_risk(p):
        return jnp.mean(jnp.sum((net.apply(p, y_fixed) + z.reshape(-1, 1) / SIGMA) ** 2, 1))

    def train(eta):
        traj = dynamics.gradient_descent(
            loss,
            params0,
            steps=STEPS,
            optimizer=optax.sgd(M * eta),
            batches=keys,
            n_save=31,
            observables={"risk": lambda t, p: fixed_risk(p)},
        )
        p = traj.final
        sharp = kernels.sharpness(fixed_risk, p, key=jax.random.key(4), num_iters=30)
        excess = diffusion.excess_risk(
            lambda t, y: net.apply(p, y), data, PROC, T, key=jax.random.key(5), n_noise=200
        )
        return p, traj.values["risk"], sharp, excess, traj.stats.status

    start = time.perf_counter()
    with progress(1, args, f"SGD, {len(ETAS)} learning rates in one vmap") as bar:
        params, risks, sharp, (excess, excess_se), status = jax.block_until_ready(
            jax.jit(jax.vmap(train))(ETAS)
        )
        bar.update()
    elapsed = time.perf_counter() - start
    fit_excess, fit_se = diffusion.excess_risk(
        fit, data, PROC, T, key=jax.random.key(5), n_noise=200
    )

    print(f"n = {N} points, sigma = {SIGMA}, m = {M} neurons, {STEPS} SGD steps ({elapsed:.0f} s)")
    print(
        f"{'eta':>7} {'step m eta':>10} | {'excess risk':>16} | {'sharpness':>9} {'2/(m eta)':>9}"
    )
    for k, eta in enumerate(np.asarray(ETAS)):
        ok = "" if int(status[k]) == 0 else f"  ({dynamics.STATUS_NAMES[int(status[k])]})"
        risk = f"{float(excess[k]):>8.2f} +- {float(excess_se[k]):>5.2f}"
        print(
            f"{eta:>7.3f} {M * eta:>10.2f} | {risk} | {float(sharp[k]):>9.2f} "
            f"{2 / (M * eta):>9.2f}{ok}"
        )
    print(f"{'Gaussian fit':>18} | {float(fit_excess):>8.2f} +- {float(fit_se):>5.2f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = jnp.linspace(-3.0, 3.0, 1200)[:, None]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    ax = axes[0]
    ax.plot(grid[:, 0], star(T, grid)[:, 0], c="k", lw=1.2, label="empirical optimal s*")
    ax.plot(grid[:, 0], fit(T, grid)[:, 0], c="0.5", ls="--", label="Gaussian fit")
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(ETAS)))
    for k, eta in enumerate(np.asarray(ETAS)):
        p = jax.tree_util.tree_map(lambda v, k=k: v[k], params)
        ax.plot(grid[:, 0], net.apply(p, grid)[:, 0], c=colors[k], label=f"SGD, eta = {eta}")
    ax.plot(data[:, 0], np.zeros(N), "r|", ms=12, label="training points")
    ax.set_ylim(-12, 12)
    ax.set_xlabel("y")
    ax.set_ylabel("score")
    ax.set_title(f"learned scores at sigma = {SIGMA}")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[1]
    ax.errorbar(np.asarray(ETAS), excess, yerr=2 * excess_se, fmt="o-", c="tab:red", label="SGD")
    ax.axhline(float(fit_excess), c="0.5", ls="--", label="Gaussian fit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate eta")
    ax.set_ylabel("excess risk R(s) - R(s*)")
    ax.set_title("larger steps: further from s* (less memorization)")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.loglog(np.asarray(ETAS), sharp, "o-", c="tab:blue", label="sharpness at the end")
    ax.loglog(
        np.asarray(ETAS), 2 / (M * np.asarray(ETAS)), "k--", label="stability bound 2/(m eta)"
    )
    ax.set_xlabel("learning rate eta")
    ax.set_ylabel("top Hessian eigenvalue")
    ax.set_title("SGD ends where the risk is flat enough for its step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
