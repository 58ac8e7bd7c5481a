"""How the residual branch must shrink with depth: ResNets with alpha_L = L^-beta.

Marion, Fermanian, Biau and Vert ("Scaling ResNets in the large-depth regime", 2022): for
h_{k+1} = h_k + L^-beta V_k relu(W_k h_k) with i.i.d. weights of variance 1/width, the relative
change of the hidden state through the network, |h_L - h_0| / |h_0|, and of the backward pass,
|b_0 - b_L| / |b_L| (b_k = dloss/dh_k), explode with depth for beta < 1/2, stay O(1) for
beta = 1/2 (a neural SDE) and vanish for beta > 1/2 (the network becomes the identity). With
weights that are smooth in the layer index (`init="smooth"`, a Gaussian process in k/L), beta = 1
gives an O(1) limit (a neural ODE) at every depth. The dashed lines are the exact mean square
of the i.i.d. case, E|h_L - h_0|^2 / |h_0|^2 = (1 + L^{-2 beta} / 2)^L - 1 (the cross terms
vanish: the weights are symmetric). Width 64, a batch of 16 Gaussian inputs, 8 seeds per point
(one vmap each), depths 10 to 1000 (one lax.scan each: the program does not grow with depth).

Run:  python examples/resnet_depth_scaling.py [--out resnet_depth_scaling.png] [--quiet]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import parse_args, progress
from flowax import kernels, models

WIDTH, BATCH, SEEDS = 64, 16, 8
DEPTHS = [10, 30, 100, 300, 1000]
CONFIGS = [  # (label, init, beta)
    ("i.i.d., beta = 1/4", "iid", 0.25),
    ("i.i.d., beta = 1/2", "iid", 0.5),
    ("i.i.d., beta = 1", "iid", 1.0),
    ("smooth, beta = 1", "smooth", 1.0),
    ("smooth, beta = 1/2", "smooth", 0.5),
]


def relative_changes(init, beta, depth, x, y):
    model = models.resnet(WIDTH, depth, d_in=x.shape[1], d_out=1, init=init, scaling=beta)

    def one(key):
        params = model.init(key)
        out = kernels.feature_updates(model.apply, params, (x, y), params)  # updates unused here
        h0, hs, _ = out.features
        b0, bs, _ = out.backward
        fwd = jnp.linalg.norm(hs[-1] - h0[0]) / jnp.linalg.norm(h0[0])
        bwd = jnp.linalg.norm(b0[0] - bs[-1]) / jnp.linalg.norm(bs[-1])
        return fwd, bwd

    keys = jax.random.split(jax.random.key(0), SEEDS)
    return jax.jit(jax.vmap(one))(keys)


def main():
    args = parse_args(__doc__, "resnet_depth_scaling.png")
    x = jax.random.normal(jax.random.key(1), (BATCH, 8))
    y = jnp.sin(x[:, :1])
    results = {}
    start = time.perf_counter()
    with progress(len(CONFIGS) * len(DEPTHS), args, "depth x scaling") as bar:
        for label, init, beta in CONFIGS:
            rows = []
            for depth in DEPTHS:
                fwd, bwd = relative_changes(init, beta, depth, x, y)
                rows.append((np.sqrt(np.mean(np.asarray(fwd) ** 2)), np.median(np.asarray(bwd))))
                bar.update()
            results[label] = np.array(rows)
    elapsed = time.perf_counter() - start

    print(f"width {WIDTH}, batch {BATCH}, {SEEDS} seeds; RMS |h_L - h_0| / |h_0|")
    print(f"{'depth':>20} | " + " ".join(f"{d:>8}" for d in DEPTHS))
    for label, init, beta in CONFIGS:
        print(f"{label:>20} | " + " ".join(f"{v:>8.3g}" for v in results[label][:, 0]))
        if init == "iid":
            exact = [np.sqrt((1 + d ** (-2 * beta) / 2) ** d - 1) for d in DEPTHS]
            print(f"{'(exact)':>20} | " + " ".join(f"{v:>8.3g}" for v in exact))
    print(f"({elapsed:.0f} s in all)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    for (label, init, beta), c in zip(CONFIGS, colors, strict=True):
        style = "-o" if init == "iid" else "-s"
        axes[0].loglog(DEPTHS, results[label][:, 0], style, color=c, label=label)
        axes[1].loglog(DEPTHS, results[label][:, 1], style, color=c, label=label)
        if init == "iid":
            d = np.geomspace(DEPTHS[0], DEPTHS[-1], 50)
            axes[0].loglog(d, np.sqrt((1 + d ** (-2 * beta) / 2) ** d - 1), "--", color=c, lw=1)
    axes[0].set_title("forward: RMS |h_L - h_0| / |h_0|  (dashed: exact)")
    axes[1].set_title("backward: median |b_0 - b_L| / |b_L|")
    for ax in axes:
        ax.set_xlabel("depth L")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "ResNets h_{k+1} = h_k + L^-beta V_k relu(W_k h_k): explosion, a limit, or the identity"
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
