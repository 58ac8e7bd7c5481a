"""Order and chaos in deep ReLU networks at infinite width, with and without layer normalization.

After Jacot, Ged, Simsek, Hongler and Gabriel, "Order and chaos: NTK views on DNN normalization,
checkerboard and boundary artifacts" (2019). Infinite-width kernels of `depth` hidden layers
Dense + ReLU (NTK parametrization, W_std = 1, b_std = 0.1: the ordered phase of ReLU, whose
critical point is W_std = sqrt 2 without bias), `flowax.kernels.mlp_kernel`:

* plain ReLU is *ordered*: the correlation map has the attracting fixed point rho = 1, so with
  depth all inputs become perfectly correlated, and as W_std^2 E[relu'^2] = 1/2 < 1 the NTK is
  dominated by its last layers: it tends to a constant matrix (effective rank 1);
* with layer normalization (centre and standardize each hidden layer over its units) the map is
  that of the standardized ReLU, for which rho = 1 repels (slope 1.47) and a small correlation
  (0 without bias) attracts: *chaotic*; distinct inputs decorrelate, the NTK grows with depth
  and tends to a multiple of the identity (flat spectrum, effective rank n).

Left: correlation of the NNGP between two unit inputs at angle phi, for depths 1..50. Right:
NTK spectra of 64 random unit inputs and their effective rank vs depth. Prints a table.

Run:  python examples/order_and_chaos.py [--out order_and_chaos.png]
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax import kernels  # noqa: E402

DEPTHS = [1, 2, 3, 5, 10, 20, 35, 50]
W_STD, B_STD = 1.0, 0.1
NORMS = {"ReLU (ordered)": None, "ReLU + layer norm (chaotic)": "layernorm"}


def correlation(k):
    d = jnp.sqrt(jnp.diag(k))
    return k / d[:, None] / d[None, :]


def main():
    args = parse_args(__doc__, "order_and_chaos.png")

    phi = np.linspace(0, np.pi, 181)
    circle = np.zeros((phi.size, 16))
    circle[:, 0], circle[:, 1] = np.cos(phi), np.sin(phi)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    results = {}
    bar = progress(len(NORMS), args, "kernels")
    for name, norm in NORMS.items():
        rows = []
        for depth in DEPTHS:
            fn = kernels.mlp_kernel(
                depth, activation="relu", weight_std=W_STD, bias_std=B_STD, normalization=norm
            )
            k_circle = fn(circle)
            corr = correlation(k_circle.nngp)[0]  # against the input at angle 0
            ntk = fn(x).ntk
            spec = np.sort(np.linalg.eigvalsh(np.asarray(ntk)))[::-1]
            rows.append(
                {
                    "depth": depth,
                    "corr": np.asarray(corr),
                    "ntk_corr_90": float(correlation(k_circle.ntk)[0, 90]),
                    "spectrum": spec / spec.sum(),
                    "rank": float(kernels.effective_rank(ntk)),
                }
            )
        results[name] = rows
        bar.update()
    bar.close()

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    cmap = plt.get_cmap("viridis")
    for col, (name, rows) in enumerate(results.items()):
        ax = axes[0, col]
        for i, r in enumerate(rows):
            ax.plot(
                np.degrees(phi),
                r["corr"],
                color=cmap(i / (len(rows) - 1)),
                label=f"L = {r['depth']}",
            )
        ax.plot(np.degrees(phi), np.cos(phi), "k:", lw=1, label="input")
        ax.set(
            title=f"{name}: NNGP correlation",
            xlabel="input angle (degrees)",
            ylabel="correlation",
            ylim=(-1.05, 1.05),
        )
        ax.legend(fontsize=7, ncol=2)
        ax = axes[1, 0]
        style = "-" if col == 0 else "--"
        for i, r in enumerate(rows):
            if r["depth"] in (1, 5, 20, 50):
                ax.semilogy(
                    np.arange(1, 65),
                    np.maximum(r["spectrum"], 1e-12),
                    style,
                    color=cmap(i / (len(rows) - 1)),
                    label=f"{'LN' if col else 'ReLU'}, L = {r['depth']}",
                )
        axes[1, 1].plot(
            [r["depth"] for r in rows], [r["rank"] for r in rows], "o" + style, label=name
        )
    axes[1, 0].set(
        title="NTK spectrum of 64 inputs (eigenvalue / trace)",
        xlabel="index",
        ylabel="eigenvalue / trace",
        ylim=(1e-6, 1.5),
    )
    axes[1, 0].legend(fontsize=7, ncol=2)
    axes[1, 1].set(
        title="NTK effective rank vs depth",
        xlabel="depth L",
        ylabel="effective rank",
        xscale="log",
        ylim=(0, 66),
    )
    axes[1, 1].axhline(64, color="gray", lw=0.8, ls=":")
    axes[1, 1].legend(fontsize=8)
    fig.suptitle("Infinite-width ReLU networks: order (plain) vs chaos (layer norm)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)

    print(
        f"\n{'depth':>5s} | {'NNGP corr at 90 deg':>21s} | {'NTK corr at 90 deg':>21s} | "
        f"{'NTK effective rank':>21s}"
    )
    print(
        f"{'':5s} | {'ReLU':>10s} {'ReLU+LN':>10s} | {'ReLU':>10s} {'ReLU+LN':>10s} | "
        f"{'ReLU':>10s} {'ReLU+LN':>10s}"
    )
    plain, ln = results.values()
    for a, b in zip(plain, ln, strict=True):
        print(
            f"{a['depth']:5d} | {a['corr'][90]:10.4f} {b['corr'][90]:10.4f} | "
            f"{a['ntk_corr_90']:10.4f} {b['ntk_corr_90']:10.4f} | "
            f"{a['rank']:10.2f} {b['rank']:10.2f}"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
