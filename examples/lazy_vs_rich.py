"""From the kernel (lazy) regime to the rich (feature-learning) regime, as one sweep.

A two-layer ReLU network f(theta, x) in NTK parametrization (width 128) learns a single-index
teacher y = relu(<w*, x>) in d = 16 from n = 96 samples. Following Chizat, Oyallon and Bach ("On
lazy training in differentiable programming", 2019), the model is h_alpha = alpha (f(theta, .) -
f(theta_0, .)) trained by gradient flow on L = |h_alpha - y|^2 / (2 n alpha^2): in function space
h' = -Theta_t (h - y) / n for every alpha, but the parameters move by O(1 / alpha):

* large alpha: lazy. theta barely moves, the NTK stays at its initial value (drift -> 0) and the
  network is the kernel model of its initial NTK (`flowax.kernels.kernel_flow`);
* small alpha: rich. The NTK changes by O(1), the first-layer weights turn toward w* (feature
  alignment up) and the test loss drops below the kernel model's.

All 13 values of alpha (10^-1 .. 10^2) run as one `flowax.dynamics.sweep`; losses and feature
alignment are computed inside the compiled program at 64 log-spaced times. Figure + table.

Run:  python examples/lazy_vs_rich.py [--out lazy_vs_rich.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args  # noqa: E402
from flowax import dynamics, kernels, models  # noqa: E402

D, WIDTH, N, N_TEST = 16, 128, 96, 500
ALPHAS = np.logspace(-1, 2, 13)
T1 = 200.0


def build():
    key_x, key_t, key_p = jax.random.split(jax.random.key(0), 3)
    w_star = jnp.zeros(D).at[0].set(1.0)
    x = jax.random.normal(key_x, (N, D))
    x_test = jax.random.normal(key_t, (N_TEST, D))
    y, y_test = jax.nn.relu(x @ w_star)[:, None], jax.nn.relu(x_test @ w_star)[:, None]
    model = models.mlp([D, WIDTH, 1], activation="relu", parametrization="ntk")
    p0 = model.init(key_p)

    def h(alpha, params, inputs):
        return alpha * (model.apply(params, inputs) - model.apply(p0, inputs))

    def alignment(params):
        """sum_i |a_i| |cos(w_i, w*)| / sum_i |a_i|: ~0.2 at random, 1 when all units see w*."""
        w, a = params[0]["w"], params[1]["w"][:, 0]
        cos = jnp.abs(w_star @ w) / jnp.linalg.norm(w, axis=0)
        return jnp.sum(jnp.abs(a) * cos) / jnp.sum(jnp.abs(a))

    def run(alpha):
        def loss(params):
            return 0.5 * jnp.mean((h(alpha, params, x) - y) ** 2) / alpha**2

        obs = {
            "train": lambda t, p: 0.5 * jnp.mean((h(alpha, p, x) - y) ** 2),
            "test": lambda t, p: 0.5 * jnp.mean((h(alpha, p, x_test) - y_test) ** 2),
            "align": lambda t, p: alignment(p),
        }
        return dynamics.gradient_flow(
            loss,
            p0,
            t1=T1,
            t0=0.0,
            n_save=64,
            spacing="log",
            observables=obs,
            rtol=1e-6,
            atol=1e-9,
            max_steps=100_000,
        )

    # the kernel model of the initial NTK (the alpha -> infinity limit), in closed form
    ntk = kernels.empirical_ntk(model.apply, p0, x, trace_axes=(-1,)) / N
    ntk_tx = kernels.empirical_ntk(model.apply, p0, x_test, x, trace_axes=(-1,)) / N
    zeros, zeros_t = jnp.zeros_like(y), jnp.zeros_like(y_test)
    lazy_train, lazy_test = kernels.kernel_flow(ntk, y)(jnp.array([T1]), zeros, zeros_t, ntk_tx)
    kernel_model = {
        "train": float(0.5 * jnp.mean((lazy_train[0] - y) ** 2)),
        "test": float(0.5 * jnp.mean((lazy_test[0] - y_test) ** 2)),
    }
    drift = jax.jit(jax.vmap(lambda p: kernels.ntk_drift(model.apply, p0)(p, x)))
    return run, drift, kernel_model, alignment(p0)


def main():
    args = parse_args(__doc__, "lazy_vs_rich.png")

    start = time.perf_counter()
    run, drift_fn, kernel_model, align0 = build()
    traj = dynamics.sweep(run, jnp.asarray(ALPHAS), chunk_size=8, progress=not args.quiet)
    drift = np.asarray(drift_fn(traj.final))
    elapsed = time.perf_counter() - start
    ts = np.asarray(traj.ts[0])
    train, test = np.asarray(traj.values["train"]), np.asarray(traj.values["test"])
    align = np.asarray(traj.values["align"])
    ok = bool(np.asarray(traj.stats.ok).all())

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    cmap = plt.get_cmap("plasma")
    for i in range(0, len(ALPHAS), 2):
        color = cmap(i / len(ALPHAS))
        axes[0, 0].loglog(ts[1:], test[i, 1:], color=color, label=f"alpha = {ALPHAS[i]:.2g}")
        axes[0, 1].semilogx(ts[1:], align[i, 1:], color=color)
    axes[0, 0].axhline(kernel_model["test"], color="k", ls=":", label="kernel model (alpha -> inf)")
    axes[0, 0].set(title="test loss during training", xlabel="time t", ylabel="test loss")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].axhline(float(align0), color="gray", ls=":", label="at initialization")
    axes[0, 1].set(
        title="feature alignment with w* (first layer)",
        xlabel="time t",
        ylabel="sum |a_i| |cos(w_i, w*)| / sum |a_i|",
    )
    axes[0, 1].legend(fontsize=8)
    ax = axes[1, 0]
    ax.loglog(ALPHAS, drift, "o-")
    ax.set(
        title="NTK drift |Theta_T - Theta_0| / |Theta_0| at the end",
        xlabel="alpha",
        ylabel="relative NTK change",
    )
    ax = axes[1, 1]
    ax.semilogx(ALPHAS, test[:, -1], "o-", label="test loss")
    ax.semilogx(ALPHAS, train[:, -1], "s-", label="train loss")
    ax.axhline(kernel_model["test"], color="k", ls=":", label="kernel model test loss")
    ax.set(
        title=f"final losses (t = {T1:g})",
        xlabel="alpha (small: rich, large: lazy)",
        ylabel="loss",
        yscale="log",
    )
    ax.legend(fontsize=8)
    fig.suptitle(f"Lazy vs rich training of a two-layer ReLU network (width {WIDTH}, n = {N})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)

    print(
        f"{len(ALPHAS)} values of alpha, one sweep: {elapsed:.1f} s (compile included); "
        f"all runs ok: {ok}"
    )
    print(
        f"{'alpha':>8s} {'NTK drift':>10s} {'alignment':>10s} {'train loss':>11s} "
        f"{'test loss':>10s} {'steps':>7s} {'status':>17s}"
    )
    steps = np.asarray(traj.stats.num_steps)
    status = [dynamics.STATUS_NAMES[int(c)] for c in np.asarray(traj.stats.status)]
    for i in range(0, len(ALPHAS), 2):
        print(
            f"{ALPHAS[i]:8.3g} {drift[i]:10.3g} {align[i, -1]:10.3f} {train[i, -1]:11.2e} "
            f"{test[i, -1]:10.3e} {steps[i]:7d} {status[i]:>17s}"
        )
    print(
        f"kernel model of the initial NTK: train {kernel_model['train']:.2e}, "
        f"test {kernel_model['test']:.3e}; alignment at init {float(align0):.3f}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
