"""Quickstart: saddle-to-saddle vs lazy training of a deep linear network, as one sweep.

A deep linear network 6-10-10-6 (three weight matrices) learns a rank-3 linear teacher with
singular values (3, 2, 1) from whitened inputs, by gradient flow on L = |f(x) - y|^2 / (2n), from
initializations W_l ~ s N(0, 1/n_{l-1}) for 32 scales s log-spaced over four decades.

* Small s (saddle-to-saddle, Saxe et al. 2014; Jacot et al. 2021): the end-to-end matrix starts
  near the saddle at 0 and learns the teacher's singular values one at a time, largest first; the
  loss shows a plateau at each saddle. With three layers, escaping a saddle from scale s takes a
  time of order 1/(s sigma_k), so each run gets its own horizon t1(s) = max(3/s, 10).
* Large s (lazy): the weights barely move relative to their size, every singular value is fitted
  at once, and the loss falls without plateaus.

Every lane is one `gradient_flow` inside one `flowax.dynamics.sweep` (vmap, chunked, sharded;
adaptive lanes share one step-size controller per chunk). Observables (loss and the end-to-end
singular values) are computed inside the compiled program at 256 log-spaced times per lane.

Run:  python examples/quickstart.py [--out quickstart.png] [--quiet]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import parse_args  # noqa: E402
from flowax import dynamics, models

WIDTHS = [6, 10, 10, 6]
SINGULAR_VALUES = (3.0, 2.0, 1.0)
SCALES = np.logspace(-3.5, 0.5, 32)


def build():
    model = models.deep_linear(WIDTHS)
    data = models.linear_teacher(
        jax.random.key(1), d_in=6, d_out=6, n=30, singular_values=SINGULAR_VALUES
    )

    def loss(params):
        residual = model.apply(params, data.x) - data.y
        return 0.5 * jnp.mean(jnp.sum(residual**2, axis=1))

    def singular_values(t, params):
        return jnp.linalg.svd(models.end_to_end(model, params, 6), compute_uv=False)[:4]

    def run(scale):
        params = model.init(jax.random.key(0), scale)
        t1 = jnp.maximum(3.0 / scale, 10.0)
        return dynamics.gradient_flow(
            loss,
            params,
            t1=t1,
            n_save=257,  # t = 0, then 256 times log-spaced over five decades
            spacing="log",
            observables={"loss": lambda t, p: loss(p), "sv": singular_values},
            rtol=1e-6,
            atol=1e-8,
            max_steps=200_000,
        )

    return run


def count_plateaus(ts, loss, *, flat=0.1, min_decades=0.05):
    """Saddles visited: flat stretches of the loss on a log-time axis before convergence.

    A plateau is a run of |d log L / d log t| < ``flat`` lasting at least ``min_decades`` of time
    while the loss is still above 100x its final value, and followed by a drop (so the trivially
    flat start of a lazy run, before its only drop, counts once, as the saddle-free start).
    """
    lt, ll = np.log10(ts), np.log10(np.maximum(loss, 1e-300))
    slope = np.gradient(ll, lt)
    active = ll > ll[-1] + 2.0
    is_flat = (np.abs(slope) < flat) & active
    count, start = 0, None
    for i, f in enumerate(np.append(is_flat, False)):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if lt[i - 1] - lt[start] >= min_decades:
                count += 1
            start = None
    return count


def time_to(ts, loss, level):
    below = np.nonzero(loss < level)[0]
    return float(ts[below[0]]) if below.size else float("nan")


def main():
    args = parse_args(__doc__, "quickstart.png")

    run = build()
    start = time.perf_counter()
    traj = dynamics.sweep(run, jnp.asarray(SCALES), chunk_size=8, progress=not args.quiet)
    jax.block_until_ready(traj)
    elapsed = time.perf_counter() - start

    # drop t = 0 (the first save point) for the log-time axes
    ts = np.asarray(traj.ts)[:, 1:]
    loss = np.asarray(traj.values["loss"])[:, 1:]
    sv = np.asarray(traj.values["sv"])[:, 1:]
    ok = np.asarray(traj.stats.ok)
    steps = np.asarray(traj.stats.num_steps)

    print(
        f"{len(SCALES)} scales, one sweep: {elapsed:.1f} s (compile included); "
        f"all runs ok: {bool(ok.all())}"
    )
    print(f"{'scale':>9} {'plateaus':>8} {'t(loss<1e-3)':>13} {'final loss':>11} {'steps':>7}")
    for i in range(0, len(SCALES), 3):
        print(
            f"{SCALES[i]:9.2e} {count_plateaus(ts[i], loss[i]):8d} "
            f"{time_to(ts[i], loss[i], 1e-3):13.3g} {loss[i, -1]:11.2e} {steps[i]:7d}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    norm = matplotlib.colors.LogNorm(SCALES[0], SCALES[-1])
    for i, s in enumerate(SCALES):
        axes[0].loglog(ts[i], loss[i], color=cmap(norm(s)), lw=1.2)
    axes[0].set(xlabel="time t", ylabel="loss", title="Gradient flow, 32 initialization scales")
    axes[0].set_ylim(1e-8, None)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0], label="scale s")
    for ax, i, name in ((axes[1], 0, "smallest"), (axes[2], len(SCALES) - 1, "largest")):
        for k in range(sv.shape[-1]):
            ax.semilogx(ts[i], sv[i, :, k], lw=2, label=f"$\\sigma_{k + 1}$(W)")
        for target in SINGULAR_VALUES:
            ax.axhline(target, color="gray", ls="--", lw=0.8)
        regime = "saddle-to-saddle" if i == 0 else "lazy"
        ax.set(
            xlabel="time t",
            ylabel="singular values of $W_3 W_2 W_1$",
            title=f"{name} scale s = {SCALES[i]:.1e} ({regime})",
        )
        ax.set_ylim(0, None)
        ax.legend(loc="upper left", fontsize=8)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
