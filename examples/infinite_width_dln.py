"""Wide deep linear networks learn the minimal-norm interpolant.

Chizat, Colombo, Fernandez-Real and Figalli ("Infinite-width limit of deep linear neural
networks", 2022): the gradient flow of a deep linear network x -> x W_1 W_2 W_3 with random
mean-field initialization converges, as the width m grows, to that of a deterministic infinitely
wide network whose end-to-end predictor converges (exponentially fast in time) to the
minimal-l2-norm minimizer of the risk; at finite m the distance is O(m^{-1/2}). Task:
underdetermined least squares, 10 points in R^24, so the interpolants form a 14-dimensional
affine space and the minimal-norm one is pinv(X) y. Mean-field networks (`deep_linear(...,
parametrization="mean_field")`, time scale m) of widths 16 .. 512, 4 seeds each (one vmap and
one compiled gradient flow per width), and the standard parametrization at scale 1 (lazy: the
random end-to-end map at initialization keeps its component outside the row space of X) for
contrast. Left: the relative distance to the minimal-norm interpolant along training; right: at
the end, against width.

Run:  python examples/infinite_width_dln.py [--out infinite_width_dln.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics, models  # noqa: E402

N, D, SEEDS, T1 = 10, 24, 4, 100.0
WIDTHS = [16, 32, 64, 128, 256, 512]


def run_width(parametrization, width, x, y, b_star):
    model = models.deep_linear([D, width, width, 1], parametrization=parametrization)
    rate = width if parametrization == "mean_field" else 1.0

    def loss(p, data):
        xx, yy = data
        return 0.5 * rate * jnp.mean((model.apply(p, xx) - yy) ** 2)

    def distance(t, p):
        e = models.end_to_end(model, p, D)
        return jnp.linalg.norm(e - b_star) / jnp.linalg.norm(b_star)

    def one(key, data):
        tr = dynamics.gradient_flow(
            loss, model.init(key), t1=T1, args=data, n_save=41, spacing="log", t0=0.0,
            rtol=1e-7, atol=1e-9,
            observables={"distance": distance, "loss": lambda t, p: loss(p, data) / rate},
        )  # fmt: skip
        return tr.ts, tr.values["distance"], tr.values["loss"], tr.stats.ok

    keys = jax.random.split(jax.random.key(0), SEEDS)
    ts, dist, losses, ok = jax.jit(jax.vmap(one, in_axes=(0, None)))(keys, (x, y))
    assert bool(jnp.all(ok))
    return np.asarray(ts[0]), np.asarray(dist), np.asarray(losses)


def main():
    args = parse_args(__doc__, "infinite_width_dln.png")
    x = jax.random.normal(jax.random.key(1), (N, D))
    y = jax.random.normal(jax.random.key(2), (N, 1))
    b_star = jnp.linalg.pinv(x) @ y
    start = time.perf_counter()
    results = {}
    with progress(len(WIDTHS) + 2, args, "widths") as bar:
        for m in WIDTHS:
            results[("mean_field", m)] = run_width("mean_field", m, x, y, b_star)
            bar.update()
        for m in (16, 64):
            results[("standard", m)] = run_width("standard", m, x, y, b_star)
            bar.update()
    elapsed = time.perf_counter() - start

    final = {k: v[1][:, -1] for k, v in results.items()}
    print(f"{N} points in R^{D}; relative distance |E - pinv(X) y| / |pinv(X) y| at t = {T1:g}")
    print(f"{'width':>7} | {'mean-field':>12} {'(sd)':>8} {'final loss':>11} | {'standard':>9}")
    for m in WIDTHS:
        mf = final[("mean_field", m)]
        loss = results[("mean_field", m)][2][:, -1].max()
        sp = f"{final[('standard', m)].mean():>9.3f}" if ("standard", m) in final else f"{'':>9}"
        print(f"{m:>7} | {mf.mean():>12.4f} {mf.std():>8.4f} {loss:>11.1e} | {sp}")
    means = [final[("mean_field", m)].mean() for m in WIDTHS]
    rate = -np.polyfit(np.log(WIDTHS), np.log(means), 1)[0]
    print(f"fitted rate: distance ~ m^-{rate:.2f} (theory: m^-1/2); {elapsed:.0f} s in all")

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("viridis")
    for i, m in enumerate(WIDTHS):
        ts, dist, _ = results[("mean_field", m)]
        color = cmap(i / len(WIDTHS))
        axes[0].loglog(ts[1:], dist.mean(0)[1:], color=color, label=f"mean-field m={m}")
    for m, style in ((16, ":"), (64, "--")):
        ts, dist, _ = results[("standard", m)]
        axes[0].loglog(ts[1:], dist.mean(0)[1:], style, color="tab:red", label=f"standard m={m}")
    axes[0].set_xlabel("time t")
    axes[0].set_ylabel("|E(t) - pinv(X) y| / |pinv(X) y|")
    axes[0].set_title("distance to the minimal-norm interpolant")
    axes[0].legend(fontsize=7)
    mf = np.array([final[("mean_field", m)] for m in WIDTHS])
    axes[1].errorbar(WIDTHS, mf.mean(1), yerr=mf.std(1), fmt="-o", label="mean-field, t = 100")
    guide = means[0] * (np.array(WIDTHS) / WIDTHS[0]) ** -0.5
    axes[1].loglog(WIDTHS, guide, ":", color="k", label="m^-1/2")
    for m in (16, 64):
        axes[1].loglog([m], [final[("standard", m)].mean()], "s", color="tab:red")
    axes[1].plot([], [], "s", color="tab:red", label="standard (lazy)")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xticks(WIDTHS, [str(m) for m in WIDTHS])
    axes[1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[1].set_xlabel("width m")
    axes[1].set_title(f"at t = {T1:g}: fitted rate m^-{rate:.2f}")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
