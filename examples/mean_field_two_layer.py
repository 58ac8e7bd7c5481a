"""A two-layer ReLU network in mean-field scaling learned by conic particle GD (WFR), vs width.

f_mu(z) = sum_i w_i a_i relu(<b_i, z>) with particles theta_i = (a_i, b_i) and masses w_i, trained
on the squared risk against a teacher with 3 ReLU neurons in d = 6, by conic particle gradient
descent (the Wasserstein-Fisher-Rao flow discretized with a mirror update of the masses). For
each width m, 4 seeds run as one `sweep`. As m grows the risk goes to 0 (global convergence of
the over-parameterized flow, Chizat and Bach 2018; Chizat 2022); small widths stall.

Run:  python examples/mean_field_two_layer.py [--out mean_field_two_layer.png]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics
from flowax.dynamics.measures import Particles

D, N, WIDTHS, SEEDS, STEPS, LR = 6, 512, (2, 4, 16, 64, 256), 4, 8000, 0.05


def main():
    args = parse_args(__doc__, "mean_field_two_layer.png")

    kt, kz = jax.random.split(jax.random.key(0))
    teacher_b = jax.random.normal(kt, (3, D)) / np.sqrt(D)
    teacher_b = teacher_b / jnp.linalg.norm(teacher_b, axis=1, keepdims=True)
    teacher_a = jnp.array([1.0, -1.0, 0.7])
    z = jax.random.normal(kz, (N, D))
    y = jax.nn.relu(z @ teacher_b.T) @ teacher_a
    risk = dynamics.measures.two_layer_risk(z, y, activation="relu")

    results = {}
    start = time.perf_counter()
    bar = progress(len(WIDTHS), args, "widths")
    for m in WIDTHS:

        def run(seed, m=m):
            ka, kb = jax.random.split(jax.random.fold_in(jax.random.key(1), seed))
            a = jax.random.normal(ka, (m, 1))
            b = jax.random.normal(kb, (m, D)) / np.sqrt(D)
            p0 = Particles(jnp.full(m, 1.0 / m), jnp.concatenate([a, b], axis=1))
            return dynamics.measures.conic_particle_gd(
                risk, p0, lr=LR, steps=STEPS, alpha=1.0, beta=1.0, n_save=STEPS // 40 + 1
            )

        results[m] = dynamics.sweep(run, jnp.arange(SEEDS), progress=False)
        bar.update()
    bar.close()
    print(f"{len(WIDTHS)} widths x {SEEDS} seeds: {time.perf_counter() - start:.1f} s")

    print(
        f"\n{'width m':>8} {'initial risk':>13} {'final risk (median of 4 seeds)':>31} "
        f"{'worst seed':>11}"
    )
    for m, traj in results.items():
        final = np.asarray(traj.values["objective"][:, -1])
        print(
            f"{m:8d} {float(traj.values['objective'][0, 0]):13.3e} {np.median(final):31.3e} "
            f"{final.max():11.3e}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    cmap = plt.get_cmap("plasma")
    for j, (m, traj) in enumerate(results.items()):
        color = cmap(j / (len(WIDTHS) - 0.5))
        ts, vals = np.asarray(traj.ts[0]), np.asarray(traj.values["objective"])
        for s in range(SEEDS):
            axes[0].loglog(
                ts[1:], vals[s, 1:], color=color, lw=1.3, label=f"m = {m}" if s == 0 else None
            )
    axes[0].set(
        xlabel="time t = k lr",
        ylabel="risk F(mu)",
        title="Conic particle GD (WFR), 4 seeds per width",
    )
    axes[0].legend(fontsize=8)
    traj = results[WIDTHS[-1]]
    final = traj.final
    a = np.asarray(final.positions[0, :, 0])
    b = np.asarray(final.positions[0, :, 1:])
    w = np.asarray(final.weights[0])
    # neurons as directions of b, projected on the first two teacher directions
    u = np.asarray(teacher_b)
    proj = (b / np.linalg.norm(b, axis=1, keepdims=True)) @ u[:2].T
    axes[1].scatter(
        proj[:, 0],
        proj[:, 1],
        s=2000 * w * np.abs(a) * np.linalg.norm(b, axis=1),
        c=np.sign(a),
        cmap="coolwarm",
        alpha=0.6,
    )
    axes[1].scatter(*(u @ u[:2].T).T, marker="*", s=300, c="k", label="teacher neurons")
    axes[1].set(
        xlabel="<b/|b|, u_1>",
        ylabel="<b/|b|, u_2>",
        title=f"m = {WIDTHS[-1]}: final neurons (size: |w a| |b|; red a > 0, blue a < 0)",
    )
    axes[1].legend(fontsize=8)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
