"""sweep: equals a Python loop, is chunk- and device-count independent, fuses adaptive lanes."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics, models

WIDTHS = [3, 5, 5, 2]


def _problem():
    model = models.deep_linear(WIDTHS)
    data = models.linear_teacher(
        jax.random.key(3), d_in=3, d_out=2, n=8, singular_values=(2.0, 1.0)
    )

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((model.apply(p, data.x) - data.y) ** 2, axis=1))

    return model, loss


MODEL, LOSS = _problem()


def adaptive_run(point):
    p = MODEL.init(jax.random.fold_in(jax.random.key(0), point["seed"]), point["scale"])
    return dynamics.gradient_flow(LOSS, p, t1=point["t1"], n_save=9, rtol=1e-10, atol=1e-12)


def euler_run(point):
    p = MODEL.init(jax.random.fold_in(jax.random.key(0), point["seed"]), point["scale"])
    return dynamics.gradient_flow(
        LOSS, p, t1=4.0, solver="euler", adaptive=False, dt0=0.05, n_save=5
    )


GRID = dynamics.product_grid(scale=np.array([0.1, 0.3, 1.0]), seed=np.arange(2))
GRID["t1"] = 20.0 / (1.0 + GRID["scale"])  # per-lane horizons


def loop(fn, grid):
    n = len(grid["scale"])
    outs = [jax.jit(fn)(jax.tree_util.tree_map(lambda x, i=i: x[i], grid)) for i in range(n)]
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *outs)


@pytest.fixture(scope="module")
def looped():
    return loop(adaptive_run, GRID)


def test_product_grid():
    g = dynamics.product_grid(a=[1, 2], b=[10, 20, 30])
    np.testing.assert_array_equal(g["a"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(g["b"], [10, 20, 30, 10, 20, 30])


def test_fused_sweep_matches_loop_within_tolerance(looped):
    out = dynamics.sweep(adaptive_run, GRID, progress=False, batching="fused")
    assert out.values["loss"].shape == (6, 9)
    np.testing.assert_allclose(out.ts, looped.ts, rtol=1e-13)
    # Each lane meets rtol = 1e-10 on every step in both runs, with different step sequences:
    # the global errors are a small multiple of the tolerance, relative to the loss scale.
    np.testing.assert_allclose(out.values["loss"], looped.values["loss"], rtol=1e-7, atol=1e-9)
    assert np.all(np.asarray(out.stats.ok))
    # the fused chunk takes one shared step sequence, no longer than the sum over lanes
    assert np.all(out.stats.num_steps == out.stats.num_steps[0])
    assert out.stats.num_steps[0] <= looped.stats.num_steps.sum()


def test_unfused_sweep_equals_loop(looped):
    out = dynamics.sweep(adaptive_run, GRID, progress=False, batching="vmap")
    # diffrax's own batching: the same per-lane controller, so the same steps up to rounding
    # (a batched reduction can flip an accept/reject decision at the last bit: +-2 steps seen).
    np.testing.assert_allclose(out.values["loss"], looped.values["loss"], rtol=1e-7, atol=1e-9)
    assert np.all(np.abs(out.stats.num_steps - looped.stats.num_steps) <= 5)


def test_map_sweep_equals_loop(looped):
    out = dynamics.sweep(adaptive_run, GRID, chunk_size=4, progress=False, batching="map")
    # every lane is its own solve, as in the loop: same steps, same values up to rounding
    np.testing.assert_array_equal(out.stats.num_steps, looped.stats.num_steps)
    np.testing.assert_allclose(out.values["loss"], looped.values["loss"], rtol=1e-12, atol=1e-14)


def test_fixed_step_sweep_exact_and_chunk_independent():
    ref = loop(euler_run, GRID)
    whole = dynamics.sweep(euler_run, GRID, progress=False)
    chunked = dynamics.sweep(euler_run, GRID, chunk_size=4, progress=False)  # 4 + 2 (padded)
    # same arithmetic up to the order of batched reductions: rounding relative to the initial
    # loss (~2.5), hence atol
    for out in (whole, chunked):
        np.testing.assert_allclose(out.values["loss"], ref.values["loss"], rtol=1e-12, atol=1e-13)


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_dead_lane_does_not_stall_the_others():
    def run(scale):
        p = jax.tree_util.tree_map(lambda w: w * scale, MODEL.init(jax.random.key(0), 1.0))
        return dynamics.gradient_flow(LOSS, p, t1=5.0, n_save=3)

    out = dynamics.sweep(run, jnp.array([0.5, jnp.nan, 1.0]), progress=False, batching="fused")
    status = np.asarray(out.stats.status)
    assert status.tolist() == [0, 2, 0]
    assert float(out.stats.nonfinite_t[1]) == 0.0
    assert np.all(np.isnan(np.asarray(out.values["loss"][1])))
    single = jax.jit(run)(0.5)
    np.testing.assert_allclose(out.values["loss"][0], single.values["loss"], rtol=1e-5)


def test_bad_grid():
    with pytest.raises(ValueError, match="grid: expected at least one grid point"):
        dynamics.sweep(euler_run, {"scale": jnp.zeros((0,)), "seed": jnp.zeros((0,))})
    with pytest.raises(ValueError, match="same leading size"):
        dynamics.sweep(euler_run, {"scale": jnp.ones(3), "seed": jnp.ones(2)})
    with pytest.raises(ValueError, match="chunk_size"):
        dynamics.sweep(euler_run, GRID, chunk_size=0)
    with pytest.raises(ValueError, match="batching"):
        dynamics.sweep(euler_run, GRID, batching="pmap")
    with pytest.raises(ValueError, match="scalar"):
        dynamics.sweep(euler_run, {"scale": 1.0})


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, {here!r})
    import test_sweep as t
    from flowax import dynamics
    assert len(jax.devices()) == {ndev}, jax.devices()
    out = dynamics.sweep(t.adaptive_run, t.GRID, chunk_size=4, progress=False, batching="fused")
    fixed = dynamics.sweep(t.euler_run, t.GRID, chunk_size=4, progress=False)
    mapped = dynamics.sweep(t.adaptive_run, t.GRID, chunk_size=4, progress=False, batching="map")
    print(json.dumps({{"loss": out.values["loss"].tolist(), "fixed": fixed.values["loss"].tolist(),
                      "steps": out.stats.num_steps.tolist(),
                      "map": mapped.values["loss"].tolist()}}))
    """
)


def _start_with_devices(ndev):
    env = dict(
        os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={ndev}", JAX_PLATFORMS="cpu"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    code = SCRIPT.format(here=here, ndev=ndev)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow  # 42 s; the default run has test_properties::test_sharded_equals_single_device
def test_same_answer_on_one_and_four_devices():
    # the two processes run side by side (each compiles its own programs)
    procs = _start_with_devices(1), _start_with_devices(4)
    one, four = (_result(p) for p in procs)
    np.testing.assert_allclose(four["fixed"], one["fixed"], rtol=1e-12, atol=1e-13)
    # The fused controller sees the same lanes per chunk on 1 and 4 devices; only the
    # reduction order of the max-norm may differ, so answers agree to rounding.
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-12, atol=1e-13)
    assert four["steps"] == one["steps"]
    np.testing.assert_allclose(four["map"], one["map"], rtol=1e-12, atol=1e-14)


def test_sweep_compiles_once_across_calls():
    traces = []

    def run(scale):
        traces.append(1)  # runs only while tracing
        return dynamics.gradient_descent(
            lambda p: 0.5 * scale * jnp.sum(p**2), jnp.ones(2), lr=0.1, steps=5
        ).values["loss"]

    first = dynamics.sweep(run, jnp.array([1.0, 2.0, 3.0]), progress=False)
    second = dynamics.sweep(run, jnp.array([4.0, 5.0, 6.0]), progress=False)
    assert len(traces) == 1
    # GD on s p^2 / 2: loss_k = s (1 - 0.1 s)^(2k) |p0|^2 / 2
    k = np.arange(6)
    for s, row in zip([4.0, 5.0, 6.0], np.asarray(second), strict=True):
        np.testing.assert_allclose(row, s * (1 - 0.1 * s) ** (2 * k), rtol=1e-12)
    assert first.shape == (3, 6)


def test_sde_lanes_draw_their_own_noise():
    # Ornstein-Uhlenbeck lanes with per-lane keys: the fused solve gives each lane the path its
    # own solve gives (the Brownian increments depend only on the lane's key and the step).
    def run(seed):
        return dynamics.integrate(
            lambda t, y, a: -2.0 * y,
            jnp.ones(4),
            t1=1.0,
            dt0=0.1,
            n_save=3,
            diffusion=lambda t, y, a: 0.5 * jnp.ones_like(y),
            key=jax.random.fold_in(jax.random.key(0), seed),
        )

    seeds = jnp.arange(3)
    fused = dynamics.sweep(run, seeds, progress=False, batching="fused")
    single = np.stack([np.asarray(jax.jit(run)(s).final) for s in seeds])
    np.testing.assert_allclose(fused.final, single, rtol=1e-13, atol=1e-15)
    assert not np.allclose(single[0], single[1])
    with pytest.raises(ValueError, match="key"):
        dynamics.integrate(
            lambda t, y, a: -y, jnp.ones(2), t1=1.0, dt0=0.1, diffusion=lambda t, y, a: y
        )
    with pytest.raises(ValueError, match="adaptive"):
        dynamics.integrate(
            lambda t, y, a: -y,
            jnp.ones(2),
            t1=1.0,
            dt0=0.1,
            adaptive=True,
            diffusion=lambda t, y, a: y,
            key=jax.random.key(0),
        )
