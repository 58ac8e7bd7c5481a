"""Partial curvature: descent-ascent converges at the curvature *averaged* along the interaction.

Quadratic games f(x, y) = eps/2 x^T P_r x + x^T B y in R^4 x R^4, with P_r the projection on a
random r-dimensional subspace (the min player is curved on r of its 4 directions, the max player
on none) and B a fixed interaction with singular values 1.2, 1.6, 2, 2.4. The field's Jacobian is
J = S + A with S = -diag(eps P_r, 0): its smallest curvature is 0 for every r < 4, 0 is the
rate a "strong convexity" argument would give. Wang & Chizat (2023), "Local convergence of
gradient methods for min-max games: partial curvature generically suffices": the flow converges
at rate -max Re eig(J) > 0 as soon as S != 0 (A's eigenvectors in general position), and for
S << A that rate is the curvature averaged along A's eigenvectors (`local_analysis`'s
``averaged_rate``), not the smallest eigenvalue of -S.

For r = 0..4 and eps = 0.2 (S << A) and eps = 2 (S ~ A) the example measures the rates of the
GDA flow (`game_flow`), extragradient and the proximal point method at eta = 0.1
(`descent_ascent`) from the decay of |v(z)| and puts them beside `local_analysis`'s predictions.

Run:  python examples/partial_curvature.py [--out partial_curvature.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax.dynamics import games  # noqa: E402

N, ETA, T = 4, 0.1, 1500.0
EPS = (0.2, 2.0)
METHODS = ("extragradient", "proximal")


def interaction():
    q1, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (N, N)))
    q2, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (N, N)))
    return q1 @ jnp.diag(jnp.array([1.2, 1.6, 2.0, 2.4])) @ q2.T


def curvature(r):
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(2), (N, N)))
    return q[:, :r] @ q[:, :r].T


def fitted_rate(ts, norm):
    ts, norm = np.asarray(ts), np.asarray(norm)
    # past the transient (|v| < 1e-2 |v0|), above rounding (> 1e-11 |v0|); slow runs: 2nd half
    keep = (norm < 1e-2 * norm[0]) & (norm > 1e-11 * norm[0])
    if keep.sum() < 8:
        keep = ts >= 0.5 * ts[-1]
    return -np.polyfit(ts[keep], np.log(norm[keep]), 1)[0]


def f(x, y, args):
    eps, p, b = args
    return 0.5 * eps * x @ p @ x + x @ b @ y


def main():
    args = parse_args(__doc__, "partial_curvature.png")
    b = interaction()
    x0 = jax.random.normal(jax.random.key(3), (N,))
    y0 = jax.random.normal(jax.random.key(4), (N,))
    rows, curves = [], {}
    start = time.perf_counter()
    with progress(len(EPS) * (N + 1), args, "games") as bar:
        for eps in EPS:
            for r in range(N + 1):
                data = (eps, curvature(r), b)
                la = games.local_analysis(f, jnp.zeros(N), jnp.zeros(N), eta=ETA, args=data)
                flow = games.game_flow(
                    f,
                    x0,
                    y0,
                    t1=T,
                    n_save=601,
                    args=data,
                    rtol=1e-10,
                    atol=1e-13,
                    max_steps=200_000,
                )
                row = {
                    "eps": eps,
                    "r": r,
                    "min_curv": float(np.min(np.linalg.eigvalsh(-np.asarray(la.symmetric)))),
                    "mean_curv": eps * r / (2 * N),  # the mean eigenvalue of -S
                    "averaged": float(la.averaged_rate),
                    "predicted_flow": float(la.flow_rate),
                    "flow": fitted_rate(flow.ts, flow.values["field_norm"]),
                }
                curves[(eps, r)] = (np.asarray(flow.ts), np.asarray(flow.values["field_norm"]))
                for m in METHODS:
                    run = games.descent_ascent(
                        f, x0, y0, eta=ETA, steps=int(T / ETA), method=m, n_save=601, args=data
                    )
                    row[m] = fitted_rate(run.ts, run.values["field_norm"])
                    row[f"predicted_{m}"] = float(la.rates[m])
                rows.append(row)
                bar.update()
    print(
        f"{len(rows)} games x (flow + {len(METHODS)} methods), {time.perf_counter() - start:.0f} s"
    )
    print(
        f"{'eps':>4} {'r':>2} | {'min eig(-S)':>11} {'mean eig(-S)':>12} {'averaged':>9} | "
        f"{'flow pred':>9} {'measured':>9} | {'EG pred':>8} {'measured':>8} | "
        f"{'PP pred':>8} {'measured':>8}"
    )
    for w in rows:
        print(
            f"{w['eps']:>4} {w['r']:>2} | {w['min_curv']:>11.4f} {w['mean_curv']:>12.4f} "
            f"{w['averaged']:>9.4f} | {w['predicted_flow']:>9.4f} {w['flow']:>9.4f} | "
            f"{w['predicted_extragradient']:>8.4f} {w['extragradient']:>8.4f} | "
            f"{w['predicted_proximal']:>8.4f} {w['proximal']:>8.4f}"
        )

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    ax = axes[0]
    for eps, color in zip(EPS, ("tab:blue", "tab:red"), strict=True):
        sel = [w for w in rows if w["eps"] == eps and w["r"] > 0]
        rs = [w["r"] for w in sel]
        pick = lambda k, sel=sel, eps=eps: [w[k] / eps for w in sel]  # noqa: E731
        ax.semilogy(rs, pick("predicted_flow"), "-", color=color, label=f"eps={eps}: -max Re eig J")
        ax.semilogy(rs, pick("flow"), "o", color=color, ms=9, mfc="none", label="measured (flow)")
    sel = [w for w in rows if w["eps"] == EPS[0] and w["r"] > 0]
    ax.semilogy(
        [w["r"] for w in sel],
        [w["averaged"] / EPS[0] for w in sel],
        "k--",
        label="curvature averaged along A's eigenvectors (1st order in eps)",
    )
    ax.semilogy(
        [w["r"] for w in sel],
        [w["mean_curv"] / EPS[0] for w in sel],
        "k:",
        label="mean eig(-S) (both eps)",
    )
    ax.text(
        0.02,
        0.97,
        "min eig(-S) = 0 for every r; r = 0: rate 0 (cycles)",
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=8,
    )
    ax.set_xticks(range(1, N + 1))
    ax.set_xlabel("rank r of the min player's curvature")
    ax.set_ylabel("local rate of the GDA flow / eps")
    ax.set_title("S << A (eps = 0.2): rate = curvature averaged along A")
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    for m, marker in zip(METHODS, ("o", "^"), strict=True):
        pred = [w[f"predicted_{m}"] for w in rows]
        ax.plot(pred, [w[m] for w in rows], marker, ms=7, mfc="none", label=m)
    pred = [w["predicted_flow"] for w in rows]
    ax.plot(pred, [w["flow"] for w in rows], "x", ms=7, label="flow")
    lim = [0, 1.05 * max(max(w["predicted_flow"] for w in rows), 1e-3)]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set_xlabel("predicted rate (local_analysis)")
    ax.set_ylabel("measured rate (fit of log |v(z_t)|)")
    ax.set_title(f"every method, eta = {ETA}: measured = predicted")
    ax.legend(fontsize=8)
    ax = axes[2]
    for r in range(N + 1):
        ts, norm = curves[(EPS[0], r)]
        ax.semilogy(ts, norm, label=f"r = {r}")
    ax.set_xlabel("t")
    ax.set_ylabel("|v(x, y)|")
    ax.set_ylim(1e-10, None)
    ax.set_title(f"GDA flow, eps = {EPS[0]}: r = 0 cycles, r >= 1 converges")
    ax.legend(fontsize=8)
    fig.suptitle("Partial curvature suffices (Wang & Chizat 2023)")
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
