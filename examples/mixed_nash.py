"""Mixed Nash equilibrium of a continuous game on the torus: conic particles vs a fixed grid.

The game: f(x, y) = phi(x)^T W phi(y) on [0, 1) x [0, 1), phi = (1, cos 2 pi x, sin 2 pi x,
cos 4 pi x, sin 4 pi x), W a fixed 5 x 5 matrix. Its mixed equilibrium (a linear program on a
1000-point grid, scipy's HiGHS) has two atoms per player. Wang & Chizat (2022/2025), "An
exponentially converging particle method for the mixed Nash equilibrium of continuous games":
conic particle mirror prox (CP-MP: weights by mirror prox, positions by extra-gradient in the
WFR geometry) converges exponentially with a handful of particles, because the positions add
degrees of freedom with curvature; mirror prox on a fixed grid (MP) only reaches the grid's own
equilibrium, whose Nikaido-Isoda error on the continuum falls with the grid spacing only, and
its rate on a bilinear (curvature-free) game is O(eta^2) per step instead of O(eta).

Runs (`flowax.dynamics.games.mixed_nash`, 3000 steps each, one compiled `lax.scan` per run):
CP-MP and CP-MDA with 8 particles per player, MP on grids of 8, 64 and 512 points; the NI error
(`nikaido_isoda`: exact search on a 1000-point grid refined by 20 gradient steps per start) is
an observable of every run.

Run:  python examples/mixed_nash.py [--out mixed_nash.png] [--quiet]
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

W = jnp.array(
    [
        [0.13, -0.13, 0.64, 0.1, -0.54],
        [0.36, 1.3, 0.95, -0.7, -1.27],
        [-0.62, 0.04, -2.33, -0.22, -1.25],
        [-0.73, -0.54, -0.32, 0.41, 1.04],
        [-0.13, 1.37, -0.67, 0.35, 0.9],
    ]
)
STEPS, M, ETA_W, ETA_X = 3000, 8, 0.1, 0.005
GRIDS = (8, 64, 512)
SEARCH = jnp.linspace(0.0, 1.0, 1000, endpoint=False)[:, None]


def phi(x):
    t = 2 * jnp.pi * x
    return jnp.stack([jnp.ones_like(t), jnp.cos(t), jnp.sin(t), jnp.cos(2 * t), jnp.sin(2 * t)])


def f(x, y):
    return phi(x[0]) @ W @ phi(y[0])


def ni(t, z):
    return games.nikaido_isoda(
        f, *z, x_candidates=SEARCH, y_candidates=SEARCH, steps=20, lr=0.005, domain="torus"
    )


def uniform(m):
    return Particles(jnp.full(m, 1.0 / m), (jnp.arange(m) / m + 0.5 / m)[:, None])


def lp_equilibrium():
    from scipy.optimize import linprog

    k = np.asarray(games.payoff_matrix(f, SEARCH, SEARCH))
    g = k.shape[0]
    res = linprog(
        np.r_[np.zeros(g), 1.0],
        A_ub=np.c_[k.T, -np.ones(g)],
        b_ub=np.zeros(g),
        A_eq=np.r_[np.ones(g), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * g + [(None, None)],
        method="highs",
    )
    res_b = linprog(
        np.r_[np.zeros(g), -1.0],
        A_ub=np.c_[-k, np.ones(g)],
        b_ub=np.zeros(g),
        A_eq=np.r_[np.ones(g), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * g + [(None, None)],
        method="highs",
    )
    return res.x[:g], res_b.x[:g], res.x[-1]


def first_below(ts, values, level):
    hit = np.nonzero(np.asarray(values) < level)[0]
    return int(ts[hit[0]]) if hit.size else None


def atoms(p, tol=1e-3):
    """Particles at the same place (to tol) merged: (positions, weights)."""
    x, w = np.asarray(p.positions[:, 0]) % 1.0, np.asarray(p.weights)
    order = np.argsort(x)
    xs, ws = [], []
    for xi, wi in zip(x[order], w[order], strict=True):
        if xs and xi - xs[-1] < tol:
            ws[-1] += wi
        else:
            xs.append(xi)
            ws.append(wi)
    return np.array(xs), np.array(ws)


def main():
    args = parse_args(__doc__, "mixed_nash.png")
    a_lp, b_lp, value = lp_equilibrium()
    grid = np.asarray(SEARCH[:, 0])
    save = np.unique(np.r_[0, np.geomspace(1, STEPS, 60).astype(int)])
    track = {"ni": ni, "x": lambda t, z: z[0].positions[:, 0], "a": lambda t, z: z[0].weights}
    track |= {"y": lambda t, z: z[1].positions[:, 0], "b": lambda t, z: z[1].weights}
    runs = {}
    configs = [("CP-MP", "cp_mp", M, ETA_W), ("CP-MDA", "cp_mda", M, ETA_W)]
    configs += [(f"MP, grid {g}", "mp", g, ETA_W) for g in GRIDS]
    configs += [(f"MP, grid {GRIDS[-1]}, eta 0.5", "mp", GRIDS[-1], 0.5)]  # a larger step
    with progress(len(configs), args, "runs") as bar:
        for name, method, m, eta in configs:
            kw = {"eta_positions": ETA_X} if method.startswith("cp") else {}
            obs = track if method.startswith("cp") else {"ni": ni}
            start = time.perf_counter()
            traj = games.mixed_nash(
                f,
                uniform(m),
                uniform(m),
                method=method,
                steps=STEPS,
                eta_weights=eta,
                domain="torus",
                save_steps=save,
                observables=obs,
                **kw,
            )
            jax.block_until_ready(traj)
            runs[name] = (traj, time.perf_counter() - start, m)
            bar.update()

    print(f"equilibrium value (LP on 1000 points): {value:.6f}")
    print(
        f"{'method':>20} {'support':>7} | {'NI @ 100':>9} {'NI @ 1000':>9} {'NI @ 3000':>9} |"
        f" {'steps to 1e-3':>13} {'to 1e-6':>8} | {'wall s':>6}"
    )
    for name, (traj, wall, m) in runs.items():
        ts, v = np.asarray(traj.ts), np.asarray(traj.values["ni"])
        at = lambda k, ts=ts, v=v: v[np.searchsorted(ts, k)]  # noqa: E731
        hits = [first_below(ts, v, lvl) for lvl in (1e-3, 1e-6)]
        hits = [str(h) if h is not None else "never" for h in hits]
        print(
            f"{name:>20} {m:>7} | {at(100):>9.2e} {at(1000):>9.2e} {at(3000):>9.2e} |"
            f" {hits[0]:>13} {hits[1]:>8} | {wall:>6.1f}"
        )

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    ax = axes[0]
    for name, (traj, _, _) in runs.items():
        ts, v = np.asarray(traj.ts), np.maximum(np.asarray(traj.values["ni"]), 1e-12)
        ax.loglog(np.maximum(ts, 1), v, "-" if name.startswith("CP") else "--", label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("Nikaido-Isoda error on the continuum")
    ax.set_ylim(1e-12, 10)
    ax.set_title(f"{M} particles per player vs grids (eta_w = {ETA_W} unless noted)")
    ax.legend(fontsize=8)
    ax = axes[1]
    traj = runs["CP-MP"][0]
    ts = np.maximum(np.asarray(traj.ts), 1)
    for key_x, key_w, color, who in (
        ("x", "a", "tab:blue", "x (min)"),
        ("y", "b", "tab:red", "y (max)"),
    ):
        pos, w = np.asarray(traj.values[key_x]), np.asarray(traj.values[key_w])
        for i in range(pos.shape[1]):
            ax.scatter(
                ts,
                pos[:, i],
                s=40 * w[:, i] + 0.5,
                color=color,
                alpha=0.6,
                label=who if i == 0 else None,
            )
    for wts, color in ((a_lp, "tab:blue"), (b_lp, "tab:red")):
        for x in grid[wts > 1e-3]:
            ax.axhline(x, color=color, lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("particle position on [0, 1)")
    ax.set_title("CP-MP particles (size ~ weight); dotted: LP atoms")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[2]
    mu, nu = (atoms(p) for p in runs["CP-MP"][0].final)
    ax.vlines(grid, 0, a_lp, color="k", lw=2, label="LP (1000 points), min player")
    ax.vlines(grid, 0, -b_lp, color="gray", lw=2, label="LP, max player (downwards)")
    ax.plot(*mu, "o", color="tab:blue", ms=9, mfc="none", label="CP-MP, min player")
    ax.plot(nu[0], -nu[1], "o", color="tab:red", ms=9, mfc="none", label="CP-MP, max player")
    mu_g = runs[f"MP, grid {GRIDS[0]}"][0].final[0]
    ax.plot(
        mu_g.positions[:, 0],
        mu_g.weights,
        "s",
        color="tab:green",
        ms=5,
        label=f"MP grid {GRIDS[0]}, min player",
    )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("position")
    ax.set_ylabel("weight")
    ax.set_title("equilibria after 3000 steps")
    ax.legend(fontsize=7)
    fig.suptitle("Conic particle mirror prox (Wang & Chizat) on a torus game")
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
