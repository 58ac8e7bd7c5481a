"""Models: shapes, parametrization variances at init, vmap over (key, scale), bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import models


@pytest.mark.parametrize("parametrization", models.PARAMETRIZATIONS)
def test_forward_variance_matches_formula(parametrization):
    # Two-layer ReLU net, no bias, input x fixed. With h = m_1 x W_1 ~ N(0, s^2 sw^2 |x|^2 / d)
    # per unit and E[relu(h)^2] = Var(h) / 2, the output variance over initializations is
    #   Var f = s^2 (m_2^2 v_2) n E[relu(h)^2] = s^4 sw^4 |x|^2 / (2 d) * c,
    # c = 1 (standard, ntk) or 1 / n (mean_field, mup: readout variance sw^2 / n^2).
    d, n, s, sw = 5, 64, 0.7, 1.3
    model = models.mlp([d, n, 1], parametrization=parametrization, weight_std=sw)
    x = jnp.linspace(-1.0, 1.0, d)[None]
    keys = jax.random.split(jax.random.key(1), 4000)
    f = jax.vmap(lambda k: model.apply(model.init(k, s), x)[0, 0])(keys)
    c = 1.0 if parametrization in ("standard", "ntk") else 1.0 / n
    expected = s**4 * sw**4 * float(jnp.sum(x**2)) / (2 * d) * c
    # E f = 0 by symmetry, so mean(f^2) estimates Var f with standard error std(f^2)/sqrt(N).
    f2 = np.asarray(f) ** 2
    se = f2.std() / np.sqrt(f2.size)
    assert abs(f2.mean() - expected) < 5 * se, (f2.mean(), expected, se)


@pytest.mark.parametrize("parametrization", models.PARAMETRIZATIONS)
def test_hidden_preactivation_variance(parametrization):
    # First-layer preactivations: Var h = s^2 (sw^2 |x|^2 / d + sb^2) in every parametrization.
    d, n, s, sw, sb = 4, 2000, 2.0, 0.9, 0.5
    model = models.mlp([d, n, 1], parametrization=parametrization, weight_std=sw, bias_std=sb)
    params = model.init(jax.random.key(2), s)
    x = jnp.ones((1, d))
    # the docstring's multipliers, restated: h = m_1 (x W_1) + m_b b
    layer = params[0]
    w_mult = {
        "standard": 1.0,
        "ntk": sw / np.sqrt(d),
        "mean_field": sw / np.sqrt(d),
        "mup": sw * np.sqrt(n / d),
    }[parametrization]
    b_mult = 1.0 if parametrization == "standard" else sb
    h = np.asarray(w_mult * (x @ layer["w"])[0] + b_mult * layer["b"])
    expected = s**2 * (sw**2 * float(jnp.sum(x**2)) / d + sb**2)
    # sample variance of n iid Gaussians: relative standard error sqrt(2 / (n - 1))
    assert abs(h.var() / expected - 1) < 5 * np.sqrt(2 / (n - 1))


def test_scale_multiplies_params_and_vmap_init():
    model = models.mlp([3, 8, 2], activation="tanh", bias_std=0.1)
    p1 = model.init(jax.random.key(0), 1.0)
    p3 = model.init(jax.random.key(0), 3.0)
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p3), strict=True):
        np.testing.assert_allclose(3.0 * a, b, rtol=1e-14)
    keys = jax.random.split(jax.random.key(0), 5)
    ps = jax.vmap(model.init)(keys, jnp.linspace(0.1, 1.0, 5))
    ys = jax.vmap(model.apply, in_axes=(0, None))(ps, jnp.ones((7, 3)))
    assert ys.shape == (5, 7, 2)
    np.testing.assert_allclose(
        ys[2], model.apply(model.init(keys[2], 0.55), jnp.ones((7, 3))), rtol=1e-12
    )


def test_apply_jit_equals_nojit():
    model = models.mlp([3, 16, 16, 2], activation="gelu", parametrization="mup", bias_std=0.2)
    p = model.init(jax.random.key(3))
    x = jax.random.normal(jax.random.key(4), (6, 3))
    np.testing.assert_allclose(jax.jit(model.apply)(p, x), model.apply(p, x), rtol=1e-12)


def test_deep_linear_end_to_end():
    model = models.deep_linear([4, 6, 5, 3], parametrization="ntk")
    p = model.init(jax.random.key(0), 0.5)
    e = models.end_to_end(model, p, 4)
    prod = p[0]["w"] @ p[1]["w"] @ p[2]["w"] / np.sqrt(4 * 6 * 5)
    np.testing.assert_allclose(e, prod, rtol=1e-12)
    x = jax.random.normal(jax.random.key(1), (9, 4))
    np.testing.assert_allclose(model.apply(p, x), x @ e, rtol=1e-12)


def test_bad_input_messages():
    with pytest.raises(ValueError, match="activation"):
        models.mlp([2, 3, 1], activation="swishy")
    with pytest.raises(ValueError, match="parametrization"):
        models.mlp([2, 3, 1], parametrization="ntp")
    with pytest.raises(ValueError, match="widths"):
        models.mlp([2])
    with pytest.raises(ValueError, match="weight_std"):
        models.mlp([2, 3, 1], weight_std=0.0)
    model = models.mlp([2, 3, 1])
    p = model.init(jax.random.key(0))
    with pytest.raises(
        ValueError, match=r"x: expected a batch of shape \[n, 2\], got shape \(5, 3\)"
    ):
        model.apply(p, jnp.ones((5, 3)))
    other = models.mlp([2, 4, 1]).init(jax.random.key(0))
    with pytest.raises(
        ValueError, match=r"params\[0\]\['w'\]: expected shape \(2, 3\), got \(2, 4\)"
    ):
        model.apply(other, jnp.ones((5, 2)))
