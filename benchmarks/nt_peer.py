"""neural-tangents side of bench_ntk.py; runs in its own virtual environment (jax <= 0.4.25).

Not imported by flowax. Writes the peer's parameters, kernels and timings to an .npz file:
  python benchmarks/nt_peer.py --out nt.npz --dtype float32|float64 [--repeats 3] [--skip-slow]
"""

from __future__ import annotations

import argparse
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()

    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import neural_tangents as nt
    import numpy as np
    from neural_tangents import stax

    dtype = jnp.dtype(args.dtype)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((128, 784)), dtype)
    init, apply, _ = stax.serial(
        stax.Dense(512), stax.Relu(), stax.Dense(512), stax.Relu(), stax.Dense(10)
    )
    _, params = init(jax.random.PRNGKey(0), x.shape)
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    out = {"jax_version": jax.__version__, "nt_version": nt.__version__}
    for i, layer in enumerate(params):
        if layer:
            out[f"w{i}"] = np.asarray(layer[0])

    def timed(fn):
        start = time.perf_counter()
        res = jax.block_until_ready(fn())
        first = time.perf_counter() - start
        best = np.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            res = jax.block_until_ready(fn())
            best = min(best, time.perf_counter() - start)
        return first, best, res

    impls = {
        "JACOBIAN_CONTRACTION": nt.NtkImplementation.JACOBIAN_CONTRACTION,
        "NTK_VECTOR_PRODUCTS": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
        "STRUCTURED_DERIVATIVES": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
    }
    for tname, trace in (("full", ()), ("traced", (-1,))):
        for name, impl in impls.items():
            if args.skip_slow and name != "STRUCTURED_DERIVATIVES":
                continue
            fn = jax.jit(
                nt.empirical_ntk_fn(apply, trace_axes=trace, vmap_axes=0, implementation=impl)
            )
            first, best, k = timed(lambda fn=fn: fn(x, None, params))
            out[f"empirical/{tname}/{name}/first"] = first
            out[f"empirical/{tname}/{name}/steady"] = best
            out[f"empirical/{tname}/{name}/kernel"] = np.asarray(k)

    xa = jnp.asarray(rng.standard_normal((1024, 784)), dtype)
    layers = []
    for _ in range(5):
        layers += [stax.Dense(512, W_std=2**0.5, b_std=0.1), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=2**0.5, b_std=0.1))
    kfn = jax.jit(lambda a: kernel_fn(a, None, ("nngp", "ntk")))
    first, best, k = timed(lambda: kfn(xa))
    out["analytic/first"], out["analytic/steady"] = first, best
    out["analytic/nngp"], out["analytic/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
