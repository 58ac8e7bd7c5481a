"""Benchmark: empirical and analytic NTK, flowax against neural-tangents, in one run.

Empirical NTK of an MLP 784-512-512-10 (ReLU, NTK parametrization, no biases: stax's
Dense(512) defaults), x1 = x2 = 128 inputs (x2 = None), trace_axes () (kernel [128, 128, 10, 10])
and (-1,) ([128, 128]); every flowax method against every neural-tangents implementation
(vmap_axes=0, its best setting for a batch-independent model). Analytic NNGP + NTK of
5 x (Dense(W_std = sqrt 2, b_std = 0.1) + ReLU) + Dense on 1024 x 1024 inputs of dimension 784.
Timings in float32 (first call = compile + run; steady = best of --repeats); agreement in
float64 (max |flowax - nt| / max |nt|), on the same parameters and inputs.

neural-tangents 0.6.5 does not import with the JAX flowax uses (../shared/notes/kernels.md), so
it runs in its own virtual environment (default .venv-nt; `make bench-ntk` creates it):
    python3 -m venv .venv-nt && .venv-nt/bin/pip install "jax==0.4.25" "jaxlib==0.4.25" \\
        "numpy<2" "tf2jax<0.3.7" "neural-tangents==0.6.5"
Run:  python benchmarks/bench_ntk.py [--nt-python .venv-nt/bin/python] [--repeats 3] [--quick]

--quick: one repeat; without the neural-tangents environment (e.g. on an accelerator lease) it
times flowax's methods alone on 32 inputs and says that the peer is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import timed  # noqa: E402
from flowax import kernels, models  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run_peer(python, dtype, repeats, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "nt.npz")
        cmd = [python, os.path.join(HERE, "nt_peer.py"), "--out", out, "--dtype", dtype]
        cmd += ["--repeats", str(repeats), *extra]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
        subprocess.run(cmd, check=True, env=env, stderr=subprocess.DEVNULL)
        with np.load(out) as data:
            return {k: data[k] for k in data.files}


def matmul_rate(repeats, n=2048):
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / timed(lambda: f(a), repeats)[1] / 1e9


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def flowax_only(n=32):
    """flowax's empirical NTK methods alone (the peer's environment is missing)."""
    print(f"neural-tangents environment missing (make bench-ntk): flowax alone, {n} inputs")
    model = models.mlp([784, 512, 512, 10], activation="relu", parametrization="ntk")
    p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), model.init(jax.random.key(0)))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n, 784)), jnp.float32)
    print("| method | trace_axes | compile s | steady s |\n|---|---|---|---|")
    for method in ("structured", "ntvp", "jacobian", "auto"):
        f = jax.jit(lambda p, x, m=method: kernels.empirical_ntk(model.apply, p, x, method=m))
        first, best, _ = timed(lambda f=f: f(p, x), 1)
        print(f"| {method} | (-1,) | {first - best:.2f} | {best:.4f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--nt-python", default=os.path.join(HERE, "..", ".venv-nt", "bin", "python")
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat; flowax alone if no peer")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
        if not os.path.exists(args.nt_python):
            return flowax_only()
    r = args.repeats
    print("neural-tangents (float32 timings) ...", flush=True)
    nt32 = run_peer(args.nt_python, "float32", r)
    print("neural-tangents (float64 kernels) ...", flush=True)
    nt64 = run_peer(args.nt_python, "float64", 0, ["--skip-slow"])
    print(
        f"flowax: jax {jax.__version__} | neural-tangents {nt32['nt_version']} on jax "
        f"{nt32['jax_version']} (own venv) | {jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} cores"
    )
    rate = matmul_rate(r)
    model = models.mlp([784, 512, 512, 10], activation="relu", parametrization="ntk")
    rng = np.random.default_rng(0)  # the same draws, in the same order, as nt_peer.py
    x = rng.standard_normal((128, 784))

    def params(data, dtype):
        return tuple({"w": jnp.asarray(data[f"w{i}"], dtype)} for i in (0, 2, 4))

    p32, p64 = params(nt32, jnp.float32), params(nt64, jnp.float64)
    x32, x64 = jnp.asarray(x, jnp.float32), jnp.asarray(x, jnp.float64)
    rows = []
    for tname, trace in (("full", ()), ("traced", (-1,))):
        shape = "[128,128,10,10]" if not trace else "[128,128]"
        best_flowax = np.inf
        for method in ("structured", "ntvp", "jacobian", "auto"):
            if method == "jacobian" and not trace:
                continue  # 128 x 10 x 669k Jacobian entries per side: 3.4 GB in float32
            f = jax.jit(
                lambda p, x, method=method, trace=trace: kernels.empirical_ntk(
                    model.apply, p, x, method=method, trace_axes=trace
                )
            )
            first, best, k = timed(lambda f=f: f(p32, x32), r)
            assert k.dtype == jnp.float32
            k64 = f(p64, x64)
            err = rel(k64, nt64[f"empirical/{tname}/STRUCTURED_DERIVATIVES/kernel"])
            rows.append((f"flowax {method}", shape, first - best, best, err))
            if method == "structured":
                flops = f.lower(p32, x32).compile().cost_analysis()
                flops = flops[0]["flops"] if isinstance(flops, list) else flops["flops"]
                gflops = flops / best / 1e9
            best_flowax = min(best_flowax, best)
        best_nt = np.inf
        for impl in ("STRUCTURED_DERIVATIVES", "NTK_VECTOR_PRODUCTS", "JACOBIAN_CONTRACTION"):
            key = f"empirical/{tname}/{impl}"
            first, best = float(nt32[key + "/first"]), float(nt32[key + "/steady"])
            err = rel(
                nt32[key + "/kernel"], nt32[f"empirical/{tname}/STRUCTURED_DERIVATIVES/kernel"]
            )
            rows.append((f"nt {impl}", shape, first - best, best, err))
            best_nt = min(best_nt, best)
        rows.append((f"best nt / best flowax ({tname})", "", np.nan, best_nt / best_flowax, np.nan))
        rows.append(
            (
                f"flowax structured: {gflops:.1f} GFLOP/s of {rate:.1f} (matmul f32)",
                "",
                np.nan,
                gflops / rate,
                np.nan,
            )
        )

    xa = rng.standard_normal((1024, 784))
    kfn = kernels.mlp_kernel(5, activation="relu", weight_std=2**0.5, bias_std=0.1)
    f = jax.jit(lambda a: kfn(a))
    first, best, k = timed(lambda: f(jnp.asarray(xa, jnp.float32)), r)
    k64 = f(jnp.asarray(xa))
    err = max(rel(k64.nngp, nt64["analytic/nngp"]), rel(k64.ntk, nt64["analytic/ntk"]))
    rows.append(("flowax mlp_kernel (analytic)", "2 x [1024,1024]", first - best, best, err))
    nt_first, nt_best = float(nt32["analytic/first"]), float(nt32["analytic/steady"])
    rows.append(
        ("nt stax kernel_fn (analytic)", "2 x [1024,1024]", nt_first - nt_best, nt_best, 0.0)
    )
    rows.append(("nt / flowax (analytic)", "", np.nan, nt_best / best, np.nan))

    print(
        f"\n{'what':58s} {'kernel':>16s} {'compile s':>10s} {'steady s':>10s} {'max rel diff':>13s}"
    )
    print("-" * 111)
    for name, shape, comp, best, err in rows:
        comp_s = f"{comp:10.3f}" if np.isfinite(comp) else " " * 10
        err_s = f"{err:13.1e}" if np.isfinite(err) else " " * 13
        val = f"{best:9.2f}x" if "/" in name or "GFLOP" in name else f"{best:10.4f}"
        print(f"{name:58s} {shape:>16s} {comp_s} {val} {err_s}")
    print(
        "\nmax rel diff: float64 kernels against neural-tangents' STRUCTURED_DERIVATIVES (its "
        "own rows: float32 against its float32 STRUCTURED_DERIVATIVES)."
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
