"""Edge of stability: full-batch GD drives the sharpness to 2/eta; gradient flow does not stop.

A tanh network 3-32-1 fits 64 points of sin(2 x_1) by full-batch gradient descent at three step
sizes eta, for the same flow time T = k eta. The sharpness (top Hessian eigenvalue) is tracked
along training by `flowax.kernels.track_sharpness` (warm-started Lanczos, a few Hessian-vector
products every 20 steps). Each run sharpens progressively until the sharpness reaches the
stability limit 2/eta of GD on a quadratic, then hovers there while the loss keeps decreasing,
non-monotonically (Cohen, Kaur, Li, Kolter and Talwalkar 2021, "Gradient descent on neural
networks typically occurs at the edge of stability"). Gradient flow (`gradient_flow`, the
eta -> 0 limit), with the sharpness as an observable, keeps sharpening past every cap.

Run:  python examples/edge_of_stability.py [--out edge_of_stability.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics, kernels, models  # noqa: E402

ETAS = (0.15, 0.125, 0.1)
T, EVERY = 600.0, 20


def main():
    args = parse_args(__doc__, "edge_of_stability.png")
    model = models.mlp([3, 32, 1], activation="tanh")
    x = jax.random.normal(jax.random.key(0), (64, 3))
    y = jnp.sin(2 * x[:, :1])

    def loss(p):
        return jnp.mean((model.apply(p, x) - y) ** 2)

    p0 = model.init(jax.random.key(1))
    s0 = float(kernels.sharpness(loss, p0, key=jax.random.key(9), num_iters=40))
    runs = {}
    start = time.perf_counter()
    with progress(len(ETAS) + 1, args, "runs") as bar:
        for eta in ETAS:
            steps = int(round(T / eta))
            tracked = kernels.track_sharpness(
                dynamics.descent_step(loss, lr=eta),
                loss,
                key=jax.random.key(2),
                every=EVERY,
                num_iters=8,
            )
            runs[eta] = dynamics.iterate(
                tracked,
                p0,
                steps=steps,
                save_steps=np.arange(0, steps + 1, EVERY),
                dt=eta,
                observables={
                    "loss": lambda t, s: loss(s.params),
                    "sharpness": lambda t, s: s.sharpness,
                },
            )
            bar.update()
        flow = dynamics.gradient_flow(
            loss,
            p0,
            t1=T,
            n_save=121,
            observables={
                "loss": lambda t, p: loss(p),
                "sharpness": lambda t, p: kernels.sharpness(
                    loss, p, key=jax.random.key(3), num_iters=30
                ),
            },
        )
        bar.update()
    elapsed = time.perf_counter() - start

    print(f"initial sharpness {s0:.2f}; flow time T = {T:g} per run ({elapsed:.0f} s in all)")
    print(
        f"{'run':>14} {'2/eta':>7} {'sharpness, 2nd half (median, min..max)':>40} "
        f"{'final loss':>11} {'Lanczos ok':>10}"
    )
    for eta, traj in runs.items():
        s = np.asarray(traj.values["sharpness"])
        late = s[len(s) // 2 :]
        band = f"{np.median(late):.2f} ({late.min():.2f}..{late.max():.2f})"
        print(
            f"{'GD eta = ' + format(eta, 'g'):>14} {2 / eta:7.1f} {band:>40} "
            f"{float(traj.values['loss'][-1]):11.2e} {str(bool(traj.stats.inner_ok)):>10}"
        )
    s = np.asarray(flow.values["sharpness"])
    print(
        f"{'gradient flow':>14} {'-':>7} {'final ' + format(s[-1], '.2f'):>40} "
        f"{float(flow.values['loss'][-1]):11.2e}"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    colors = dict(zip(ETAS, ("tab:red", "tab:orange", "tab:blue"), strict=True))
    for eta, traj in runs.items():
        ts = np.asarray(traj.ts)
        axes[0].semilogy(
            ts, traj.values["loss"], color=colors[eta], lw=1.2, label=f"GD, eta = {eta:g}"
        )
        axes[1].plot(
            ts, traj.values["sharpness"], color=colors[eta], lw=1.5, label=f"GD, eta = {eta:g}"
        )
        axes[1].axhline(2 / eta, color=colors[eta], ls="--", lw=1)
        axes[1].text(
            T, 2 / eta, f" 2/eta = {2 / eta:.3g}", color=colors[eta], va="bottom", ha="right"
        )
    axes[0].semilogy(flow.ts, flow.values["loss"], color="k", lw=1.5, label="gradient flow")
    axes[1].plot(flow.ts, flow.values["sharpness"], color="k", lw=1.5, label="gradient flow")
    axes[0].set(xlabel="time t = k eta", ylabel="training loss", title="Loss")
    axes[1].set(
        xlabel="time t = k eta",
        ylabel="sharpness (top Hessian eigenvalue)",
        title="Sharpness rises to 2/eta and stays there",
    )
    axes[0].legend(fontsize=9)
    axes[1].legend(fontsize=9, loc="upper left")
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
