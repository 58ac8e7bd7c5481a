"""Benchmark: the quickstart sweep three ways, in one run.

The sweep: gradient flow of a deep linear network 6-10-10-6 on a rank-3 teacher, 32
initialization scales log-spaced over 10^-3.5 .. 10^0.5, per-scale horizons t1(s) = max(3/s, 10),
Tsit5 + PID controller (rtol 1e-6, atol 1e-8), loss saved at t = 0 and 256 log-spaced times
per scale.

1. flowax `sweep`: batching="map" (each device solves its lanes one by one inside one compiled
   program) on one and on all devices, and batching="fused" (one controller per chunk of 8 and
   of 32 lanes); each also with early exit (``stop_if``: a lane ends once its loss is below
   1e-8, ``Stats.t_final`` says when; its later saves hold the final loss),
2. a Python loop over the scales calling one jitted `diffrax.diffeqsolve` (compiled once),
3. `jax.jit(jax.vmap(diffeqsolve))` over the scales.

Accuracy: each method's losses against a reference (the loop at rtol 1e-11, atol 1e-13), as the
max over scales and save times of |L - L_ref| / (L_ref + 1e-8 L_0); and "vs loop": the max
relative difference from the loop's losses where those are above 1e-4 (matched losses).
Times: compile (first call minus steady) and steady state (min of --repeats), in seconds.

Set-up as in the README: `flowax.use_cpu_cores()` first (one CPU device per core; --devices=N
to choose), so "all devices" means all cores. The loop and the vmap run on one device, as a
user's script would.

Memory (section C): a sweep whose every point returns an 8 MB array, run in a child process
keeping its results in memory and with `checkpoint=` + `keep_in_memory=False`; the peak
resident memory of each child (ru_maxrss) shows the second bounded by a chunk, not the grid.

Run:  python benchmarks/bench_sweep.py [--repeats 3] [--float32] [--devices=N] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time

import flowax

if __name__ == "__main__":
    _n = next((a.split("=")[1] for a in sys.argv if a.startswith("--devices=")), None)
    if "--memory-child" not in sys.argv:
        flowax.use_cpu_cores(None if _n is None else int(_n))  # the README's set-up

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
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--points", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.points)
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

    def flowax_exit(point):  # early exit once the loss is below 1e-8
        p, t1 = init(point)
        traj = dynamics.gradient_flow(
            loss,
            p,
            t1=t1,
            n_save=257,
            spacing="log",
            rtol=1e-6,
            atol=1e-8,
            max_steps=400_000,
            stop_if=lambda t, q, a: loss(q) < 1e-8,
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
        run_problem(
            title, points, args, dynamics, (flowax_point, flowax_exit), one, vmapped, ref_fn
        )
    memory_section(args.quick)


def run_problem(title, grid, args, dynamics, flowax_fns, one, vmapped, ref_fn):
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

    def fx(fn=flowax_fns[0], **kw):
        return lambda: dynamics.sweep(fn, grid, progress=False, **kw)

    exit_fn = flowax_fns[1]
    cases = [
        ("python loop of jit(diffeqsolve)", loop),
        ("flowax sweep map, 1 device", fx(batching="map", devices=jax.devices()[:1])),
        (f"flowax sweep map, {nd} devices", fx(batching="map")),
        (f"flowax sweep fused chunk 8, {nd} devices", fx(batching="fused", chunk_size=8)),
        (f"flowax sweep fused chunk 32, {nd} devices", fx(batching="fused")),
        (f"flowax sweep map + early exit, {nd} devices", fx(exit_fn, batching="map")),
        (
            f"flowax sweep fused chunk 8 + early exit, {nd} devices",
            fx(exit_fn, batching="fused", chunk_size=8),
        ),
    ]
    if not args.skip_vmap:
        cases.append(("jit(vmap(diffeqsolve))", lambda: vmapped(grid)))
    looped = None
    for name, fn in cases:
        (losses, steps), compile_s, steady_s = timed(fn, args.repeats)
        losses = np.asarray(losses)
        looped = losses if looped is None else looped
        err = np.max(np.abs(losses - ref) / (ref + floor))
        big = looped > 1e-4
        matched = np.max(np.abs(losses - looped)[big] / looped[big])
        rows.append(
            (name, compile_s, steady_s, err, matched, int(np.sum(steps)), int(np.max(steps)))
        )
        print(f"  done: {name}", flush=True)

    loop_t = next(r[2] for r in rows if r[0].startswith("python loop"))
    vmap_t = next((r[2] for r in rows if r[0].startswith("jit(vmap")), float("nan"))
    print()
    print(
        f"| way ({title[:1]}) | compile s | steady s | vs loop | vs vmap | max rel err | "
        f"loss diff vs loop (L > 1e-4) | sum steps | max steps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, c, s, err, matched, tot, mx in rows:
        print(
            f"| {name} | {c:.2f} | {s:.3f} | {loop_t / s:.2f}x | {vmap_t / s:.2f}x | "
            f"{err:.1e} | {matched:.1e} | {tot} | {mx} |"
        )
    print(
        "'vs loop' / 'vs vmap': how many times faster than that way (steady state). 'sum steps' "
        "adds the step counts of the lanes (a fused chunk counts its shared steps per lane)."
    )


def memory_child(mode, points):
    """One sweep of ``points`` points, each returning an 8 MB array; prints the peak RSS (MB)."""
    import jax.numpy as jnp
    from flowax import dynamics

    def big(seed):  # 1000 x 1000 float64 per point
        return jax.random.normal(jax.random.fold_in(jax.random.key(0), seed), (1000, 1000))

    seeds = jnp.arange(points)
    jax.config.update("jax_enable_x64", True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "memory":
            out = dynamics.sweep(big, seeds, chunk_size=4, progress=False)
            jax.block_until_ready(out)
        else:
            dynamics.sweep(
                big, seeds, chunk_size=4, progress=False, checkpoint=tmp, keep_in_memory=False
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{before:.0f} {peak:.0f}")


def memory_section(quick):
    points = 32 if quick else 128
    print(f"\nC: memory of a sweep of {points} points x 8 MB ({points * 8} MB of results), chunk 4")
    print("| mode | RSS before sweep MB | peak RSS MB | growth MB |")
    print("|---|---|---|---|")
    for mode, label in (("memory", "in memory"), ("disk", "checkpoint, keep_in_memory=False")):
        out = subprocess.run(
            [sys.executable, __file__, f"--memory-child={mode}", f"--points={points}"],
            capture_output=True,
            text=True,
            check=True,
        )
        before, peak = (float(v) for v in out.stdout.split()[-2:])
        print(f"| {label} | {before:.0f} | {peak:.0f} | {peak - before:.0f} |")


if __name__ == "__main__":
    main()
