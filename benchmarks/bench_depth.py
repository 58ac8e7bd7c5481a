"""Deep ResNets: flowax's ``models.resnet`` (one ``lax.scan`` over stacked layers) beside the
Python loop of layers under ``jit`` (unrolled) and a flax ``nn.scan`` module, in one run.

The network is ``h_{k+1} = h_k + L^{-1/2} relu(h_k W_k) V_k`` (width 64, i.i.d. weights), a batch
of 256 points in R^16, float32, and the timed program is the forward and backward pass
(``jit(value_and_grad(mse))``), the same weights for all three.

1. Per depth (10 .. 1000): compile time (``lower`` + ``compile``, the first call minus the
   steady state) and steady state (min of --repeats) of flowax, the unrolled loop and
   flax ``nn.scan``; ratios over flowax. The unrolled program grows with the depth, so its
   compile is measured only up to ``--unroll-max`` (default 300).
2. ``kernels.feature_updates`` (features, backward pass, first-order feature update: one
   ``value_and_grad`` and one ``jvp``) over one gradient, at depth 100.

Targets (issue #15): compile flat in depth; steady state within 1.2x of the unrolled loop at
depth 10 and ahead at depth >= 100; feature_updates <= 3 gradients.

Run:  python benchmarks/bench_depth.py [--repeats 20] [--quick]
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from _timing import timed
from flowax import kernels, models

WIDTH, BATCH, D_IN = 64, 256, 16


def problem(depth):
    model = models.resnet(WIDTH, depth, d_in=D_IN, d_out=1, scaling=0.5, init="iid")
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (BATCH, D_IN), jnp.float32)
    y = jnp.sin(x[:, :1])
    return model, jax.tree.map(lambda p: p.astype(jnp.float32), params), x, y


def mse(pred, y):
    return 0.5 * jnp.mean((pred - y) ** 2)


def unrolled_apply(depth):
    alpha = depth**-0.5

    def apply(p, x):
        h = x @ p["embed"]
        for wk, vk in zip(p["w"], p["v"], strict=True):
            h = h + alpha * jax.nn.relu(h @ wk) @ vk
        return h @ p["readout"]

    return apply


class Block(nn.Module):
    alpha: float

    @nn.compact
    def __call__(self, h, _):
        w = self.param("w", nn.initializers.normal(WIDTH**-0.5), (WIDTH, WIDTH))
        v = self.param("v", nn.initializers.normal(WIDTH**-0.5), (WIDTH, WIDTH))
        return h + self.alpha * jax.nn.relu(h @ w) @ v, None


class FlaxResNet(nn.Module):
    depth: int

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(WIDTH, use_bias=False, name="embed")(x)
        stack = nn.scan(
            Block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=self.depth,
        )
        h, _ = stack(self.depth**-0.5, name="blocks")(h, None)
        return nn.Dense(1, use_bias=False, name="readout")(h)


def flax_params(p):
    """flowax's stacked weights in the flax module's tree."""
    return {
        "params": {
            "embed": {"kernel": p["embed"]},
            "blocks": {"w": p["w"], "v": p["v"]},
            "readout": {"kernel": p["readout"]},
        }
    }


def grad_program(apply):
    return jax.jit(jax.value_and_grad(lambda p, x, y: mse(apply(p, x), y)))


def compile_and_run(fn, args, repeats):
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    _, best, out = timed(lambda: compiled(*args), repeats)
    return compile_s, best, out


def part1(depths, unroll_max, repeats):
    print("1. forward + backward, width 64, batch 256, float32 (ms; compile in s)")
    head = (
        f"{'depth':>6} | {'flowax':>8} {'unrolled':>9} {'flax scan':>9} | "
        f"{'compile flowax':>14} {'unrolled':>9} {'flax':>7} | {'unrolled/flowax':>15} "
        f"{'flax/flowax':>11}"
    )
    print(head)
    rows = []
    for depth in depths:
        model, p, x, y = problem(depth)
        cf, tf, (lf, gf) = compile_and_run(grad_program(model.apply), (p, x, y), repeats)
        module = FlaxResNet(depth)
        cx, tx, (lx, _) = compile_and_run(
            grad_program(module.apply), (flax_params(p), x, y), repeats
        )
        assert np.allclose(lf, lx, rtol=1e-4), (lf, lx)
        if depth <= unroll_max:
            pl = dict(p, w=list(p["w"]), v=list(p["v"]))
            unrolled_grad = grad_program(unrolled_apply(depth))
            cu, tu, (lu, gu) = compile_and_run(unrolled_grad, (pl, x, y), repeats)
            assert np.allclose(lf, lu, rtol=1e-4), (lf, lu)
            assert np.allclose(gf["readout"], gu["readout"], rtol=1e-3, atol=1e-6)
            unrolled = f"{tu * 1e3:>9.3f}"
            cu_s = f"{cu:>9.2f}"
            ratio = f"{tu / tf:>15.2f}"
        else:
            unrolled, cu_s, ratio = f"{'-':>9}", f"{'-':>9}", f"{'-':>15}"
        print(
            f"{depth:>6} | {tf * 1e3:>8.3f} {unrolled} {tx * 1e3:>9.3f} | {cf:>14.2f} {cu_s} "
            f"{cx:>7.2f} | {ratio} {tx / tf:>11.2f}"
        )
        rows.append((depth, cf))
    cfs = [c for _, c in rows]
    print(
        f"   flowax compile: {min(cfs):.2f} .. {max(cfs):.2f} s over depths "
        f"{depths[0]} .. {depths[-1]} (ratio {max(cfs) / min(cfs):.2f})"
    )


def part2(depth, repeats):
    model, p, x, y = problem(depth)
    grad = grad_program(model.apply)
    _, tg, (_, g) = compile_and_run(grad, (p, x, y), repeats)
    updates = jax.tree.map(lambda v: -0.1 * v, g)
    fu = jax.jit(lambda p, x, y, u: kernels.feature_updates(model.apply, p, (x, y), u))
    _, tfu, out = compile_and_run(fu, (p, x, y, updates), repeats)
    assert out.cos.shape == (depth + 2,)
    print(
        f"\n2. feature_updates at depth {depth}: {tfu * 1e3:.3f} ms = {tfu / tg:.2f} gradients "
        f"(one gradient {tg * 1e3:.3f} ms; target <= 3)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--unroll-max", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    depths = (10, 100, 300) if args.quick else (10, 30, 100, 300, 1000)
    unroll_max = min(args.unroll_max, 100) if args.quick else args.unroll_max
    repeats = min(args.repeats, 5) if args.quick else args.repeats
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    part1(depths, unroll_max, repeats)
    part2(100, repeats)


if __name__ == "__main__":
    main()
