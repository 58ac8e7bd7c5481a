"""Max-margin classification with an infinitely wide two-layer ReLU network, as a zero-sum game.

A two-layer network in mean-field form is a measure mu on neurons theta = (a, b) in S^3 (input
weights a in R^3 acting on (x, 1), output weight b; the unit sphere because the neuron
b relu(a . (x, 1)) is 2-homogeneous): h_mu(x) = int b relu(a . (x, 1)) dmu(theta). Its F1 max
margin on data (x_j, y_j) is

    gamma* = max_{mu in P(S^3)} min_{q in P(data)} sum_j q_j y_j h_mu(x_j),

a zero-sum game between an adversary q over the samples (the min player: a distribution over n
fixed atoms, like distributionally robust training) and the neurons (the max player: particles
on the sphere), with payoff f(sample, theta) = y b relu(a . (x, 1)). Gradient descent on the
logistic loss converges in direction to this max-margin network (Chizat & Bach 2020, "Implicit
bias of gradient descent for wide two-layer neural networks trained with the logistic loss");
here it is computed directly by conic particle mirror prox (`mixed_nash(method="cp_mp")`, the
samples' positions frozen by ``eta_positions=(0, eta)``, the neurons on the sphere by
``domain=("euclidean", "sphere")``), against two baselines:

* the same game with the neurons frozen at their random initialization (fixed-support mirror
  prox, i.e. a random-features max margin, at its best step 10 of 1, 10, 30, 100), and
* a linear program over 20000 random neurons (scipy's HiGHS): the random-features max margin a
  user would compute to approximate gamma*.

Run:  python examples/max_margin_game.py [--out max_margin_game.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax.dynamics import games  # noqa: E402
from flowax.dynamics.measures import Particles  # noqa: E402

N, M, STEPS, ETA_W, ETA_X = 40, 256, 16000, 1.0, 0.05
ETA_MP = 10.0  # the best of 1, 10, 30, 100 for the frozen-neuron baseline
LP_NEURONS = 20000


def data():
    x = jax.random.uniform(jax.random.key(0), (N, 2), minval=-1.0, maxval=1.0)
    y = jnp.sign(x[:, 0] * x[:, 1] + 0.1 * jnp.sin(4 * x[:, 0]))  # a curved XOR
    return x, y


def sphere(key, m):
    g = jax.random.normal(key, (m, 4))
    return g / jnp.linalg.norm(g, axis=1, keepdims=True)


def neuron(theta, x):
    """b relu(a . (x, 1)) for theta = (a, b) and inputs x [..., 2]."""
    return theta[3] * jax.nn.relu(x @ theta[:2] + theta[2])


def f(sample, theta):  # sample = (x_1, x_2, y): the min player's (frozen) atoms
    return sample[2] * neuron(theta, sample[:2])


def margin(t, z):
    q, mu = z
    return jnp.min(games.payoff_matrix(f, q.positions, mu.positions) @ mu.weights)


def lp_margin(samples, thetas):
    from scipy.optimize import linprog

    k = np.asarray(games.payoff_matrix(f, samples, thetas))  # [n, m]
    n, m = k.shape
    # max t s.t. K w >= t, w in the simplex
    res = linprog(
        np.r_[np.zeros(m), -1.0],
        A_ub=np.c_[-k, np.ones(n)],
        b_ub=np.zeros(n),
        A_eq=np.r_[np.ones(m), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * m + [(None, None)],
        method="highs",
    )
    return -res.fun


def main():
    args = parse_args(__doc__, "max_margin_game.png")
    x, y = data()
    samples = jnp.concatenate([x, y[:, None]], axis=1)
    q0 = Particles(jnp.full(N, 1.0 / N), samples)
    mu0 = Particles(jnp.full(M, 1.0 / M), sphere(jax.random.key(1), M))
    starts = sphere(jax.random.key(2), 2000)

    def ni(t, z):
        return games.nikaido_isoda(
            f,
            *z,
            x_candidates=samples,
            y_candidates=starts,
            steps=(0, 30),
            lr=0.05,
            domain=("euclidean", "sphere"),
        )

    obs = {"margin": margin, "ni": ni}
    save = np.unique(np.r_[0, np.geomspace(1, STEPS, 50).astype(int)])
    runs = {}
    with progress(3, args, "runs") as bar:
        start = time.perf_counter()
        runs["CP-MP (neurons move)"] = games.mixed_nash(
            f,
            q0,
            mu0,
            method="cp_mp",
            steps=STEPS,
            eta_weights=ETA_W,
            eta_positions=(0.0, ETA_X),
            domain=("euclidean", "sphere"),
            save_steps=save,
            observables=obs,
        )
        wall_cp = time.perf_counter() - start
        bar.update()
        start = time.perf_counter()
        runs["MP (neurons frozen)"] = games.mixed_nash(
            f,
            q0,
            mu0,
            method="mp",
            steps=STEPS,
            eta_weights=ETA_MP,
            domain=("euclidean", "sphere"),
            save_steps=save,
            observables=obs,
        )
        wall_mp = time.perf_counter() - start
        bar.update()
        start = time.perf_counter()
        lp = {m: lp_margin(samples, sphere(jax.random.key(3), m)) for m in (M, 2000, LP_NEURONS)}
        lp_frozen = lp_margin(samples, mu0.positions)
        wall_lp = time.perf_counter() - start
        bar.update()

    print(f"n = {N} samples, {M} neurons on S^3, {STEPS} steps, eta_w = {ETA_W}, eta_x = {ETA_X}")
    print(f"{'method':>30} {'neurons':>8} | {'margin':>8} {'NI error':>9} | {'wall s':>6}")
    for name, wall in (("CP-MP (neurons move)", wall_cp), ("MP (neurons frozen)", wall_mp)):
        tr = runs[name]
        print(
            f"{name:>30} {M:>8} | {float(tr.values['margin'][-1]):>8.4f} "
            f"{float(tr.values['ni'][-1]):>9.2e} | {wall:>6.1f}"
        )
    print(f"{'LP, the frozen init neurons':>30} {M:>8} | {lp_frozen:>8.4f} {'':>9} |")
    for m, v in lp.items():
        print(f"{'LP, random neurons':>30} {m:>8} | {v:>8.4f} {'':>9} |")
    print(f"(the {len(lp) + 1} LPs: {wall_lp:.1f} s)")

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    ax = axes[0]
    for name, tr in runs.items():
        ax.semilogx(np.maximum(np.asarray(tr.ts), 1), tr.values["margin"], label=name)
    for k, (m, v) in enumerate(lp.items()):
        ax.axhline(v, ls=":", lw=1, color="gray")
        ax.text(1.2 * 6**k, v, f"LP, {m} random", fontsize=7, va="bottom", color="gray")
    ax.set_ylim(-0.04, 0.02)
    ax.set_xlabel("iteration")
    ax.set_ylabel("min_j y_j h_mu(x_j)  (margin)")
    ax.set_title("margin of the network")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    for name, tr in runs.items():
        ax.loglog(np.maximum(np.asarray(tr.ts), 1), np.maximum(tr.values["ni"], 1e-12), label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("Nikaido-Isoda error (best neuron anywhere on S^3)")
    ax.set_title("distance to the game's equilibrium")
    ax.legend(fontsize=8)
    ax = axes[2]
    q, mu = runs["CP-MP (neurons move)"].final
    g = jnp.linspace(-1.1, 1.1, 200)
    gx, gy = jnp.meshgrid(g, g)
    pts = jnp.stack([gx.ravel(), gy.ravel()], axis=1)
    h = jax.vmap(lambda p: mu.weights @ jax.vmap(lambda th: neuron(th, p))(mu.positions))(pts)
    h = np.asarray(h).reshape(gx.shape)
    lim = np.abs(h).max()
    ax.contourf(gx, gy, h, levels=21, cmap="RdBu", vmin=-lim, vmax=lim, alpha=0.6)
    ax.contour(gx, gy, h, levels=[0.0], colors="k", linewidths=1.5)
    sizes = 20 + 600 * np.asarray(q.weights)
    for label, marker in ((1.0, "o"), (-1.0, "s")):
        sel = np.asarray(y) == label
        ax.scatter(
            x[sel, 0],
            x[sel, 1],
            s=sizes[sel],
            marker=marker,
            c="k" if label > 0 else "w",
            edgecolors="k",
            label=f"y = {label:+.0f}",
        )
    ax.set_title("CP-MP network; sample size ~ adversary's weight q_j")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.legend(fontsize=8, loc="upper right")
    fig.suptitle("Max-margin two-layer ReLU network as a zero-sum game (neurons vs samples)")
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
