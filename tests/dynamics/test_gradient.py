"""Gradient descent: equals explicit Euler of the gradient flow; optax; the step in a user loop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flowax import dynamics, models


@pytest.fixture(scope="module")
def problem():
    model = models.mlp([3, 8, 1], activation="tanh")
    x = jax.random.normal(jax.random.key(0), (16, 3))
    y = jnp.sin(x[:, :1])
    params = model.init(jax.random.key(1))

    def loss(p):
        return 0.5 * jnp.mean((model.apply(p, x) - y) ** 2)

    return loss, params, model, x


def test_gd_equals_euler_gradient_flow(problem):
    loss, params, _, _ = problem
    lr, steps = 0.05, 40
    gd = dynamics.gradient_descent(loss, params, lr=lr, steps=steps, n_save=11)
    ts = np.arange(0, steps + 1, 4) * lr
    flow = dynamics.gradient_flow(
        loss, params, t1=steps * lr, ts=ts, solver="euler", adaptive=False, dt0=lr
    )
    np.testing.assert_allclose(gd.ts, ts, rtol=1e-14)
    # same recursion; the flow's normalized time only reorders rounding (~1e-16 per step)
    np.testing.assert_allclose(gd.values["loss"], flow.values["loss"], rtol=1e-11)
    for a, b in zip(
        jax.tree_util.tree_leaves(gd.final), jax.tree_util.tree_leaves(flow.final), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_optax_sgd_equals_plain_gd_and_step_in_user_loop(problem):
    loss, params, _, _ = problem
    plain = dynamics.gradient_descent(loss, params, lr=0.1, steps=20)
    sgd = dynamics.gradient_descent(loss, params, optimizer=optax.sgd(0.1), steps=20)
    np.testing.assert_allclose(plain.values["loss"], sgd.values["loss"], rtol=1e-14)
    stepper = dynamics.descent_step(loss, optimizer=optax.adam(1e-2))
    step = jax.jit(chex.assert_max_traces(stepper.step, n=1))
    state = stepper.init(params)
    for _ in range(20):
        state = step(state)
    assert int(state.count) == 20
    adam = dynamics.gradient_descent(loss, params, optimizer=optax.adam(1e-2), steps=20)
    for a, b in zip(
        jax.tree_util.tree_leaves(adam.final), jax.tree_util.tree_leaves(state.params), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert adam.values["loss"][-1] < adam.values["loss"][0]


def test_gd_under_vmap_and_jit(problem):
    loss, params, _, _ = problem
    run = jax.jit(
        lambda lr: dynamics.gradient_descent(loss, params, lr=lr, steps=10).values["loss"]
    )
    lrs = jnp.array([0.01, 0.1])
    batched = jax.vmap(run)(lrs)
    np.testing.assert_allclose(batched[1], run(0.1), rtol=1e-12)
    assert batched.shape == (2, 11)


def test_bad_input(problem):
    loss, params, model, x = problem
    with pytest.raises(ValueError, match="lr"):
        dynamics.gradient_descent(loss, params, lr=-0.1, steps=10)
    with pytest.raises(ValueError, match="lr: pass exactly one"):
        dynamics.gradient_descent(loss, params, steps=10)
    with pytest.raises(ValueError, match="steps"):
        dynamics.gradient_descent(loss, params, lr=0.1, steps=0)
    with pytest.raises(ValueError, match="n_save"):
        dynamics.gradient_descent(loss, params, lr=0.1, steps=10, n_save=0)
    with pytest.raises(ValueError, match="save_steps"):
        dynamics.gradient_descent(loss, params, lr=0.1, steps=10, save_steps=[0, 11])
    with pytest.raises(ValueError, match="optimizer"):
        dynamics.gradient_descent(loss, params, optimizer="adam", steps=10)
    # params and data of mismatched shapes: the model names the argument, before compilation
    wrong = models.mlp([4, 8, 1]).init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"params\[0\]\['w'\]: expected shape \(3, 8\)"):
        dynamics.gradient_descent(loss, wrong, lr=0.1, steps=10)
    bad_x = jnp.ones((5, 2))
    with pytest.raises(ValueError, match=r"x: expected a batch of shape \[n, 3\]"):
        dynamics.gradient_flow(lambda p: jnp.mean(model.apply(p, bad_x)), params, t1=1.0)
