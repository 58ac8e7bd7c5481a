"""Sparse deconvolution on the torus with particles (after Chizat and Bach 2018; Chizat 2022).

A nonnegative sparse measure mu* = sum_j a_j delta_{s_j} on [0, 1) is observed through its
2K + 1 low-pass Fourier coefficients with noise. We minimize the BLASSO objective
F(mu) = |Phi mu - y|^2 / 2 + reg mu([0, 1)) over particle measures with m = 30 particles and
compare, at equal compute (the same number of steps of the same cost):

* Wasserstein (positions move, masses fixed at their initial values),
* Wasserstein-Fisher-Rao (conic particle gradient descent, mirror update of the masses),
* a fixed grid (Fisher-Rao: masses move, positions fixed).

Only WFR both moves the particles onto the off-grid spikes and fits their masses.

Run:  python examples/sparse_deconvolution.py [--out sparse_deconvolution.png]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics
from flowax.dynamics.measures import Particles

K, SIGMA, REG, M, STEPS, LR = 10, 0.01, 2e-3, 30, 20000, 0.02
SPIKES = np.array([0.113, 0.29, 0.52, 0.555, 0.81])
AMPS = np.array([0.9, 0.5, 1.0, 0.7, 0.6])


def summarize(final, spikes=SPIKES):
    """Per spike: mass within 0.015 and its mass-weighted position."""
    x = np.mod(np.asarray(final.positions[:, 0]), 1.0)
    w = np.asarray(final.weights)
    masses, positions = [], []
    for s in spikes:
        near = np.abs(x - s) < 0.015
        mass = w[near].sum()
        masses.append(mass)
        positions.append(np.sum(w[near] * x[near]) / mass if mass > 0 else np.nan)
    return np.array(masses), np.array(positions)


def main():
    args = parse_args(__doc__, "sparse_deconvolution.png")

    y = dynamics.measures.fourier_features(jnp.asarray(SPIKES), K).T @ jnp.asarray(AMPS)
    y = y + SIGMA * jax.random.normal(jax.random.key(0), y.shape)
    objective = dynamics.measures.sparse_deconvolution(y, cutoff=K, reg=REG)
    grid = (jnp.arange(M) + 0.5) / M
    p0 = Particles(jnp.full(M, AMPS.sum() / M), grid[:, None])
    alpha = 1.0 / (2 * np.pi * K) ** 2  # positions: the features vary on the scale 1/(2 pi K)
    obs = {
        "objective": lambda t, p: objective(p),
        "x": lambda t, p: jnp.mod(p.positions[:, 0], 1.0),
        "w": lambda t, p: p.weights,
    }
    runs = {
        "Wasserstein": dict(alpha=alpha, beta=0.0),
        "WFR (conic GD)": dict(alpha=alpha, beta=1.0),
        "fixed grid (Fisher-Rao)": dict(alpha=0.0, beta=1.0),
    }
    trajs = {}
    with progress(len(runs), args, "runs") as bar:
        for name, rates in runs.items():
            trajs[name] = dynamics.measures.conic_particle_gd(
                objective, p0, lr=LR, steps=STEPS, n_save=STEPS // 40 + 1, observables=obs, **rates
            )
            bar.update()

    print(f"{len(SPIKES)} spikes, K = {K}, noise {SIGMA}, {M} particles, {STEPS} steps each")
    print(f"{'method':<26} {'objective':>10} {'max |pos err|':>14} {'max |mass err|':>15}")
    for name, traj in trajs.items():
        masses, positions = summarize(traj.final)
        pos_err = np.nanmax(np.abs(positions - SPIKES)) if np.all(masses > 0) else np.inf
        print(
            f"{name:<26} {float(traj.values['objective'][-1]):10.2e} {pos_err:14.2e} "
            f"{np.max(np.abs(masses - AMPS)):15.2e}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
    colors = dict(zip(runs, ["tab:orange", "tab:blue", "tab:green"], strict=True))
    ax = axes[0]
    ax.stem(SPIKES, AMPS, linefmt="k-", markerfmt="ko", basefmt=" ", label="true spikes")
    for name, traj in trajs.items():
        x = np.mod(np.asarray(traj.final.positions[:, 0]), 1.0)
        ax.plot(
            x, np.asarray(traj.final.weights), "v", color=colors[name], ms=6, alpha=0.8, label=name
        )
    ax.set(xlabel="position on the torus", ylabel="mass", title="Recovered measures", xlim=(0, 1))
    ax.legend(fontsize=8)
    ax = axes[1]
    for name, traj in trajs.items():
        ax.loglog(traj.ts[1:], traj.values["objective"][1:], color=colors[name], label=name, lw=2)
    ax.set(xlabel="time t = k lr", ylabel="objective F(mu)", title="Objective, equal compute")
    ax.legend(fontsize=8)
    ax = axes[2]
    traj = trajs["WFR (conic GD)"]
    xs, ws, ts = np.asarray(traj.values["x"]), np.asarray(traj.values["w"]), np.asarray(traj.ts)
    for i in range(M):
        ax.scatter(
            ts[1:],
            xs[1:, i],
            s=2 + 40 * ws[1:, i] / AMPS.max(),
            c="tab:blue",
            alpha=0.4,
            linewidths=0,
        )
    for s in SPIKES:
        ax.axhline(s, color="k", ls="--", lw=0.7)
    ax.set(
        xscale="log",
        xlabel="time t",
        ylabel="particle position",
        title="WFR particles (marker size = mass)",
    )
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
