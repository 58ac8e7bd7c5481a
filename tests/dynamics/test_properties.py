"""Property-based tests of sweeps (hypothesis, the deterministic "flowax" profile of conftest):
chunked == unchunked (to rounding), sharded == single device (bit for bit),
checkpointed-and-resumed == uninterrupted (bit for bit), shards partition the grid and merge,
product_grid's size and order."""

import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics import _sweep
from hypothesis import given
from hypothesis import strategies as st


def point_fn(p):
    """A cheap pure function of a grid point with a pytree input and output."""
    a, b = p["a"], p["b"]
    s = jnp.sin(a) * jnp.sum(b) + jnp.cos(jnp.sum(b**2))
    return {"s": s, "v": b * jnp.exp(-a), "m": jnp.outer(b[:, 0], b[:, 1]) + a}


def make_grid(n, seed):
    rng = np.random.default_rng(seed)
    return {"a": jnp.asarray(rng.normal(size=n)), "b": jnp.asarray(rng.normal(size=(n, 3, 2)))}


def close(x, y, rtol=1e-14):
    """Equal to rounding: a chunk of one lane compiles to other code than a chunk of many (XLA
    simplifies a one-step loop), so elementwise transcendental results may differ in the last
    bit across chunk sizes; with the chunk size fixed they are bit for bit (see same_bits)."""
    lx, tx = jax.tree_util.tree_flatten(x)
    ly, ty = jax.tree_util.tree_flatten(y)
    assert tx == ty
    for u, v in zip(lx, ly, strict=True):
        assert np.asarray(u).dtype == np.asarray(v).dtype
        np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-15)
    return True


def same_bits(x, y):
    lx, tx = jax.tree_util.tree_flatten(x)
    ly, ty = jax.tree_util.tree_flatten(y)
    return tx == ty and all(
        np.asarray(u).dtype == np.asarray(v).dtype
        and np.asarray(u).shape == np.asarray(v).shape
        and np.asarray(u).tobytes() == np.asarray(v).tobytes()
        for u, v in zip(lx, ly, strict=True)
    )


@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_product_grid_size_and_order(sizes):
    axes = {f"x{i}": np.arange(k) + 10 * i for i, k in enumerate(sizes)}
    grid = dynamics.product_grid(**axes)
    expected = list(itertools.product(*axes.values()))  # the last axis varies fastest
    assert all(len(v) == int(np.prod(sizes)) for v in grid.values())
    got = list(zip(*(np.asarray(v).tolist() for v in grid.values()), strict=True))
    assert got == [tuple(int(c) for c in e) for e in expected]


@given(n=st.integers(1, 60), k=st.integers(1, 60))
def test_shards_partition_the_grid(n, k):
    if k > n:
        with pytest.raises(ValueError, match="shard: expected n <= the grid size"):
            _sweep._shard_bounds((0, k), n)
        return
    bounds = [_sweep._shard_bounds((i, k), n)[:2] for i in range(k)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, in order
    sizes = [hi - lo for lo, hi in bounds]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


@given(
    n=st.integers(1, 9),
    chunk=st.integers(1, 10),
    batching=st.sampled_from(["map", "vmap"]),
    seed=st.integers(0, 3),
)
def test_chunked_equals_unchunked(n, chunk, batching, seed):
    grid = make_grid(n, seed)
    whole = dynamics.sweep(point_fn, grid, progress=False, batching=batching)
    chunked = dynamics.sweep(point_fn, grid, chunk_size=chunk, progress=False, batching=batching)
    assert close(chunked, whole)
    one = jax.jit(point_fn)(jax.tree_util.tree_map(lambda x: x[n - 1], grid))
    last = jax.tree_util.tree_map(lambda x: x[n - 1], chunked)
    for u, v in zip(jax.tree_util.tree_leaves(last), jax.tree_util.tree_leaves(one), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-14, atol=1e-15)  # and it is fn, lane by lane


@given(
    n=st.integers(1, 9),
    chunk=st.integers(1, 4),
    drop=st.sets(st.integers(0, 8), max_size=4),
    shards=st.integers(1, 3),
)
def test_checkpointed_and_resumed_equals_uninterrupted(n, chunk, drop, shards):
    grid = make_grid(n, 0)
    whole = dynamics.sweep(point_fn, grid, progress=False)
    shards = min(shards, n)

    def run(i, checkpoint=None):
        return dynamics.sweep(
            point_fn,
            grid,
            chunk_size=chunk,
            shard=(i, shards),
            progress=False,
            checkpoint=checkpoint,
        )

    uninterrupted = [run(i) for i in range(shards)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [pathlib.Path(tmp) / str(i) for i in range(shards)]
        for i, path in enumerate(paths):
            run(i, path)
            for k in drop:  # interrupted: some committed chunks are lost
                (path / f"chunk_{k:06d}.npz").unlink(missing_ok=True)
        parts = [run(i, path) for i, path in enumerate(paths)]
        merged = jax.tree_util.tree_map(jnp.asarray, dynamics.merge_shards(paths))
    for part, ref in zip(parts, uninterrupted, strict=True):
        assert same_bits(part, ref)  # resumed == uninterrupted, bit for bit
    concatenated = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *uninterrupted)
    assert same_bits(merged, concatenated)
    assert close(merged, whole)


DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_enable_x64", True)
    from hypothesis import given, settings, strategies as st
    from flowax import dynamics
    from test_properties import make_grid, point_fn, same_bits

    checked = []

    @settings(derandomize=True, database=None, deadline=None, max_examples=15)
    @given(n=st.integers(1, 9), chunk=st.integers(1, 9), d=st.integers(2, 4),
           batching=st.sampled_from(["map", "vmap"]))
    def prop(n, chunk, d, batching):
        grid = make_grid(n, 1)
        one = dynamics.sweep(point_fn, grid, chunk_size=chunk, progress=False,
                             batching=batching, devices=jax.devices()[:1])
        many = dynamics.sweep(point_fn, grid, chunk_size=chunk, progress=False,
                              batching=batching, devices=jax.devices()[:d])
        assert same_bits(one, many), (n, chunk, d, batching)
        checked.append((n, chunk, d))

    prop()
    print(json.dumps({"checked": len(checked), "devices": len(jax.devices())}))
    """
)


def test_sharded_equals_single_device():
    """On 1 to 4 CPU devices (a fresh process with four), any grid and chunk size: bit for bit."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run(
        [sys.executable, "-c", DEVICES_SCRIPT, str(pathlib.Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 4 and r["checked"] == 15
