"""Backward-aligned feature updates: the angle between each layer's feature update and the
backward pass, and steering per-layer learning rates by the feature speed.

Chizat and Netrapalli ("Steering deep feature learning with backward aligned feature updates",
2024). For features f_l, the backward pass b_l = dloss/df_l and a gradient step, the feature
update delta f_l satisfies |delta f_l| |b_l| cos theta_l = sum_{k<=l} eta_k |grad_k loss|^2
(`flowax.kernels.feature_updates`, tested to 1e-10). Left: cos theta_l at initialization decays
like l^{-1/2} in i.i.d. ReLU MLPs (He init) but stays Theta(1) in ResNets with branch 1/sqrt(L)
(width 256, one input, 8 seeds, one vmap per network). Middle and right: a depth-12, width-128
ReLU MLP fit to a tanh teacher (128 points, full batch, 200 steps) by SGD at the best of four
learning rates and by per-layer rates from `steer_feature_speed` that set every layer's
relative feature update to 0.02 sqrt(l) at every step (K = 13 jvps per step), both under the
same cosine decay of the step to 5% (for the steered run an `optax.chain` of the steering and
`optax.scale_by_schedule`: a fixed feature speed alone never anneals and the loss oscillates);
right: the relative feature speeds |delta f_l| / |f_l| at the first step (the output's target
is out of reach: the hidden layers' updates alone already move it by ~0.4, so its rate is the
one that moves it least, 0, and the transformation reports the speed it got).

Run:  python examples/feature_speed.py [--out feature_speed.png] [--quiet]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import parse_args, progress
from flowax import kernels, models

DEPTHS = [8, 16, 32]
LRS = [1e-3, 3e-3, 1e-2, 3e-2]
DEPTH, WIDTH, STEPS = 12, 128, 200


def _decay(value):
    return optax.cosine_decay_schedule(value, STEPS, alpha=0.05)


def target(k):
    return 0.02 * np.sqrt(np.arange(1, k + 1))


def cos_profile(model, x, y, seeds=8):
    def one(key):
        p = model.init(key)
        g = jax.grad(lambda q: 0.5 * jnp.mean(jnp.sum((model.apply(q, x) - y) ** 2, 1)))(p)
        return kernels.feature_updates(model.apply, p, (x, y), jax.tree.map(jnp.negative, g)).cos

    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), seeds))).mean(0)


def train(model, p0, x, y, tx, steer):
    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, 1))

    @jax.jit
    def step(p, s):
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, x=x) if steer else tx.update(g, s, p)
        return optax.apply_updates(p, u), s, value, u

    p, s, losses, first = p0, tx.init(p0), [], None
    for _ in range(STEPS):
        p_old = p
        p, s, value, u = step(p, s)
        if first is None:
            first = kernels.feature_updates(model.apply, p_old, (x, y), u).speed
        losses.append(float(value))
    losses.append(float(loss(p)))
    return np.array(losses), np.asarray(first)


def main():
    args = parse_args(__doc__, "feature_speed.png")
    start = time.perf_counter()
    x1 = jax.random.normal(jax.random.key(1), (1, 10))
    y1 = jnp.ones((1, 1))
    profiles = {}
    with progress(2 * len(DEPTHS) + len(LRS) + 1, args, "networks") as bar:
        for depth in DEPTHS:
            mlp = models.mlp([10] + [256] * depth + [1], activation="relu", weight_std=2**0.5)
            profiles[("MLP", depth)] = cos_profile(mlp, x1, y1)[:depth]
            bar.update()
            res = models.resnet(256, depth, d_in=10, d_out=1, scaling=0.5)
            profiles[("ResNet", depth)] = cos_profile(res, x1, y1)[1 : depth + 1]
            bar.update()

        x = jax.random.normal(jax.random.key(1), (128, 10))
        teacher = models.mlp([10, 32, 1], activation="tanh")
        y = teacher.apply(teacher.init(jax.random.key(9), 2.0), x)
        y = y / jnp.std(y)
        model = models.mlp([10] + [WIDTH] * DEPTH + [1], activation="relu", weight_std=2**0.5)
        p0 = model.init(jax.random.key(0))
        sgd = {}
        for lr in LRS:
            sgd[lr] = train(model, p0, x, y, optax.sgd(_decay(lr)), steer=False)
            bar.update()
        tx = optax.chain(
            kernels.steer_feature_speed(target, model.apply), optax.scale_by_schedule(_decay(1.0))
        )
        steered = train(model, p0, x, y, tx, steer=True)
        bar.update()
    elapsed = time.perf_counter() - start
    best = min(LRS, key=lambda lr: sgd[lr][0][-1])

    print("cos theta_l at initialization (mean of 8 seeds), layers 1, 2, 4, 8, ..., L")
    for (kind, depth), c in profiles.items():
        idx = [i for i in (0, 1, 3, 7, 15, 31) if i < depth]
        print(f"  {kind:>6} L={depth:<3} " + " ".join(f"{c[i]:.3f}" for i in idx))
    print(f"\ndepth-{DEPTH} MLP, {STEPS} full-batch steps: final loss")
    for lr in LRS:
        print(f"  SGD lr={lr:<6g} {sgd[lr][0][-1]:.3e}" + ("  (best)" if lr == best else ""))
    print(f"  steered       {steered[0][-1]:.3e}  ({sgd[best][0][-1] / steered[0][-1]:.1f}x lower)")
    print(f"({elapsed:.0f} s in all)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for (kind, depth), c in profiles.items():
        color = {8: "tab:blue", 16: "tab:orange", 32: "tab:green"}[depth]
        style = "-o" if kind == "MLP" else "--s"
        axes[0].loglog(
            np.arange(1, depth + 1), c, style, ms=3, color=color, label=f"{kind}, L={depth}"
        )
    ell = np.arange(1, 33)
    axes[0].loglog(ell, 1.4 / np.sqrt(ell), ":", color="k", label="l^-1/2")
    axes[0].set_xlabel("layer l")
    axes[0].set_ylabel("cos theta_l")
    axes[0].set_title("alignment of feature updates with the backward pass")
    axes[0].legend(fontsize=7, ncol=2)
    for lr in LRS:
        axes[1].semilogy(sgd[lr][0], lw=1.5 if lr == best else 0.8, label=f"SGD lr={lr:g}")
    axes[1].semilogy(steered[0], color="k", lw=2, label="steered: 0.02 sqrt(l)")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("training loss")
    axes[1].set_title(f"depth-{DEPTH} ReLU MLP")
    axes[1].legend(fontsize=8)
    k = np.arange(1, DEPTH + 2)
    axes[2].semilogy(k, sgd[best][1], "-o", label=f"SGD lr={best:g}")
    axes[2].semilogy(k, steered[1], "-s", color="k", label="steered")
    axes[2].semilogy(k, target(DEPTH + 1), ":", color="k", label="target")
    axes[2].set_xlabel("layer l (last: output)")
    axes[2].set_ylabel("|delta f_l| / |f_l| at step 1")
    axes[2].set_title("relative feature speed")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
