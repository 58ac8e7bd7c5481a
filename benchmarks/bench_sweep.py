"""Benchmark: the quickstart sweep three ways, in one run.

The sweep: gradient flow of a deep linear network 6-10-10-6 on a rank-3 teacher, 32
initialization scales log-spaced over 10^-3.5 .. 10^0.5, per-scale horizons t1(s) = max(3/s, 10),
Tsit5 + PID controller (rtol 1e-6, atol 1e-8), loss saved at t = 0 and 256 log-spaced times
per scale.

1. flowax `sweep`: batching="map" (each device solves its lanes one by one inside one compiled
   program) on one and on all devices, and batching="fused" (one controller per chunk of 8 and
   of 32 lanes),
2. a Python loop over the scales calling one jitted `diffrax.diffeqsolve` (compiled once),
3. `jax.jit(jax.vmap(diffeqsolve))` over the scales.

Accuracy: each method's losses against a reference (the loop at rtol 1e-11, atol 1e-13), as the
max over scales and save times of |L - L_ref| / (L_ref + 1e-8 L_0). Times: compile (first call
minus steady) and steady state (min of --repeats), in seconds.

On a CPU, JAX sees one device unless told otherwise; this script asks XLA for one host device
per core (--devices, default: all cores) before importing JAX, so "all devices" means all cores.
The loop and the vmap run on one device, as a user's script would.

Run:  python benchmarks/bench_sweep.py [--repeats 3] [--float32] [--devices=N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":
    _n = next((a.split("=")[1] for a in sys.argv if a.startswith("--devices=")), None)
    os.environ.setdefault(
        "XLA_FLAGS", f"--xla_force_host_platform_device_count={_n or os.cpu_count()}"
    )

import jax
import numpy as np


def timed(fn, repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    steady = min(times)
    return out, max(first - steady, 0.0), steady


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--skip-vmap", action="store_true", help="skip the slow plain vmap")
    parser.add_argument("--devices", default=None, help="host devices (write --devices=N)")
    parser.add_argument("--quick", action="store_true", help="8 lanes, no plain vmap, 1 repeat")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", not args.float32)
    if args.quick:
        args.repeats, args.skip_vmap = 1, True

    import diffrax
    import jax.numpy as jnp
    from flowax import dynamics, models

    dtype = jnp.float32 if args.float32 else jnp.float64
    lanes = 8 if args.quick else 32
    scales = jnp.asarray(np.logspace(-2.0 if args.quick else -3.5, 0.5, lanes), dtype)
    model = models.deep_linear([6, 10, 10, 6])
    data = models.linear_teacher(
        jax.random.key(1), d_in=6, d_out=6, n=30, singular_values=(3.0, 2.0, 1.0)
    )
    x, y = data.x.astype(dtype), data.y.astype(dtype)
    # t0, then 256 times log-spaced over five decades: flowax's n_save=257, spacing="log" (a
    # normalized grid shared by the lanes, so fused lanes with their own horizons share a solve)
    save_grid = jnp.asarray(np.concatenate([[0.0], np.logspace(-5, 0, 256)]), dtype)

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, axis=1))

    def init(point):
        scale, seed, balanced = point
        p = model.init(jax.random.fold_in(jax.random.key(0), seed), scale)
        t1 = jnp.where(balanced, 60.0, jnp.maximum(3.0 / scale, 10.0))
        return jax.tree_util.tree_map(lambda a: a.astype(dtype), p), t1.astype(dtype)

    # --- flowax
    def flowax_point(point):
        p, t1 = init(point)
        traj = dynamics.gradient_flow(
            loss, p, t1=t1, n_save=257, spacing="log", rtol=1e-6, atol=1e-8, max_steps=400_000
        )
        return traj.values["loss"], traj.stats.num_steps

    # --- plain diffrax
    def diffrax_point(point, rtol=1e-6, atol=1e-8):
        p, t1 = init(point)
        term = diffrax.ODETerm(
            lambda t, th, a: jax.tree_util.tree_map(jnp.negative, jax.grad(loss)(th))
        )
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            t0=0.0,
            t1=t1,
            dt0=None,
            y0=p,
            saveat=diffrax.SaveAt(ts=t1 * save_grid, fn=lambda t, th, a: loss(th)),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=400_000,
            throw=False,
        )
        return sol.ys, sol.stats["num_steps"]

    one = jax.jit(diffrax_point)

    vmapped = jax.jit(jax.vmap(diffrax_point))
    ref_fn = jax.jit(lambda s: diffrax_point(s, 1e-11, 1e-13))
    print(
        f"jax {jax.__version__}, diffrax {diffrax.__version__}, {len(jax.devices())} devices "
        f"({jax.devices()[0].platform}), dtype {np.dtype(dtype).name}"
    )
    problems = {
        f"A: {lanes} scales in [{scales[0]:.2g}, {scales[-1]:.2g}], t1(s) = max(3/s, 10) "
        "(the quickstart)": (
            scales,
            jnp.zeros(lanes, jnp.int32),
            jnp.zeros(lanes, bool),
        ),
        f"B: {lanes} seeds at scale 0.1, t1 = 60 (lanes of equal difficulty)": (
            jnp.full(lanes, 0.1, dtype),
            jnp.arange(lanes, dtype=jnp.int32),
            jnp.ones(lanes, bool),
        ),
    }
    for title, points in problems.items():
        run_problem(title, points, args, dynamics, flowax_point, one, vmapped, ref_fn)


def run_problem(title, grid, args, dynamics, flowax_point, one, vmapped, ref_fn):
    import jax.numpy as jnp

    n = grid[0].shape[0]
    points = [tuple(g[i] for g in grid) for i in range(n)]

    def loop():
        outs = [one(p) for p in points]
        return jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])

    print(f"\n{title}")
    ref = np.stack([np.asarray(ref_fn(p)[0]) for p in points])
    floor = 1e-8 * ref[:, :1]

    rows = []
    nd = len(jax.devices())

    def fx(**kw):
        return lambda: dynamics.sweep(flowax_point, grid, progress=False, **kw)

    cases = [
        ("flowax sweep map, 1 device", fx(batching="map", devices=jax.devices()[:1])),
        (f"flowax sweep map, {nd} devices", fx(batching="map")),
        (f"flowax sweep fused chunk 8, {nd} devices", fx(batching="fused", chunk_size=8)),
        (f"flowax sweep fused chunk 32, {nd} devices", fx(batching="fused")),
        ("python loop of jit(diffeqsolve)", loop),
    ]
    if not args.skip_vmap:
        cases.append(("jit(vmap(diffeqsolve))", lambda: vmapped(grid)))
    for name, fn in cases:
        (losses, steps), compile_s, steady_s = timed(fn, args.repeats)
        err = np.max(np.abs(np.asarray(losses) - ref) / (ref + floor))
        rows.append((name, compile_s, steady_s, err, int(np.sum(steps)), int(np.max(steps))))
        print(f"  done: {name}", flush=True)

    loop_t = next(r[2] for r in rows if r[0].startswith("python loop"))
    vmap_t = next((r[2] for r in rows if r[0].startswith("jit(vmap")), float("nan"))
    print()
    print(
        f"| way ({title[:1]}) | compile s | steady s | vs loop | vs vmap | max rel err | "
        f"sum steps | max steps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, c, s, err, tot, mx in rows:
        print(
            f"| {name} | {c:.2f} | {s:.3f} | {loop_t / s:.2f}x | {vmap_t / s:.2f}x | "
            f"{err:.1e} | {tot} | {mx} |"
        )
    print(
        "'vs loop' / 'vs vmap': how many times faster than that way (steady state). 'sum steps' "
        "adds the step counts of the lanes (a fused chunk counts its shared steps per lane)."
    )


if __name__ == "__main__":
    main()
