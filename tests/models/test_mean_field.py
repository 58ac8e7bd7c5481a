"""The bridge between a mean-field two_layer network and its measure of neurons."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import tree_allclose
from flowax import dynamics, models
from flowax.dynamics.measures import Particles

M, D, S = 7, 3, 1.7


@pytest.fixture(scope="module")
def net():
    model = models.two_layer(M, d_in=D, activation="tanh", weight_std=S)
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (20, D))
    y = jnp.sin(x[:, 0])
    return model, params, x, y


def test_same_function_same_risk_and_round_trip(net):
    model, params, x, y = net
    p = models.two_layer_to_particles(params, weight_std=S)
    assert p.positions.shape == (M, 1 + D)
    np.testing.assert_allclose(p.weights, 1.0 / M, rtol=1e-15)
    risk = dynamics.measures.two_layer_risk(x, y, activation="tanh")
    loss = 0.5 * jnp.mean((model.apply(params, x)[:, 0] - y) ** 2)
    np.testing.assert_allclose(risk(p), loss, rtol=1e-13)
    tree_allclose(models.particles_to_two_layer(p, weight_std=S), params, rtol=1e-14)
    # non-uniform masses are folded into the output weights: the same function
    q = Particles(jax.random.uniform(jax.random.key(2), (M,)), p.positions)
    back = models.particles_to_two_layer(q, weight_std=S)
    np.testing.assert_allclose(
        0.5 * jnp.mean((model.apply(back, x)[:, 0] - y) ** 2), risk(q), rtol=1e-13
    )


def test_parameter_gradients_are_the_first_variation_scaled(net):
    # dL/da_i = (s/m) grad_A V and dL/dw_i = (s/(m sqrt d)) grad_B V (module docstring)
    model, params, x, y = net
    risk = dynamics.measures.two_layer_risk(x, y, activation="tanh")
    p = models.two_layer_to_particles(params, weight_std=S)
    _, grad_v = dynamics.measures.first_variation(risk, p)
    g = jax.grad(lambda q: 0.5 * jnp.mean((model.apply(q, x)[:, 0] - y) ** 2))(params)
    np.testing.assert_allclose(g[1]["w"][:, 0], S / M * grad_v[:, 0], rtol=1e-12)
    np.testing.assert_allclose(g[0]["w"].T, S / (M * np.sqrt(D)) * grad_v[:, 1:], rtol=1e-12)


def test_bad_input(net):
    _, params, _, _ = net
    with pytest.raises(ValueError, match="^params: expected"):
        models.two_layer_to_particles(({"w": params[0]["w"], "b": 0.0}, params[1]))
    with pytest.raises(ValueError, match=r"^params\[1\]\['w'\]: expected shape"):
        models.two_layer_to_particles((params[0], {"w": params[1]["w"][:3]}))
    with pytest.raises(ValueError, match="^weight_std: expected"):
        models.two_layer_to_particles(params, weight_std=0.0)
    with pytest.raises(ValueError, match="^particles.positions: expected shape"):
        models.particles_to_two_layer(Particles(jnp.ones(3) / 3, jnp.ones((3, 1))))
