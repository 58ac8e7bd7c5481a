"""Teachers (exact properties) and the flax adapters (agreement with the module itself)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import models


def test_linear_teacher_whitened_and_spectrum():
    data = models.linear_teacher(
        jax.random.key(0), d_in=6, d_out=5, n=40, singular_values=(3.0, 2.0, 1.0)
    )
    np.testing.assert_allclose(data.x.T @ data.x / 40, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(
        np.linalg.svd(data.teacher, compute_uv=False)[:4], [3, 2, 1, 0], atol=1e-12
    )
    np.testing.assert_allclose(data.y, data.x @ data.teacher, atol=1e-12)
    with pytest.raises(ValueError, match="singular_values"):
        models.linear_teacher(jax.random.key(0), d_in=2, d_out=2, n=4, singular_values=(1, 1, 1))


def test_multi_index_teacher():
    data = models.multi_index_teacher(jax.random.key(0), d_in=7, n=50, k=2, link="tanh")
    np.testing.assert_allclose(data.teacher.T @ data.teacher, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(
        data.y[:, 0], jnp.tanh(data.x @ data.teacher).sum(1) / np.sqrt(2), atol=1e-12
    )


def test_from_flax_linen_matches_module():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(jnp.tanh(nn.Dense(8)(x)))

    x = jnp.ones((4, 3))
    model = models.from_flax(Net(), x)
    p = model.init(jax.random.key(1), 2.0)
    ref = Net().init(jax.random.key(1), x)["params"]
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(ref), strict=True):
        np.testing.assert_allclose(a, 2.0 * b, rtol=1e-14)
    np.testing.assert_allclose(model.apply(p, x), Net().apply({"params": p}, x), rtol=1e-14)
    ps = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 3), jnp.ones(3))
    assert jax.vmap(model.apply, (0, None))(ps, x).shape == (3, 4, 2)
    with pytest.raises(ValueError, match=r"x: expected a batch of shape \[n, 3\]"):
        model.apply(p, jnp.ones((4, 5)))


def test_from_flax_nnx_factory_and_instance():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(3, 8, rngs=rngs)
            self.l2 = nnx.Linear(8, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.l1(x)))

    x = jnp.linspace(0, 1, 12).reshape(4, 3)
    model = models.from_flax(lambda rngs: Net(rngs), x)
    p = model.init(jax.random.key(5), 1.0)
    ref = Net(nnx.Rngs(jax.random.key(5)))
    np.testing.assert_allclose(model.apply(p, x), ref(x), rtol=1e-12)
    p2 = model.init(jax.random.key(5), 0.5)
    a = jax.tree_util.tree_leaves(p)[0]
    np.testing.assert_allclose(jax.tree_util.tree_leaves(p2)[0], 0.5 * a, rtol=1e-14)
    # keys are traced: vmap over them
    ps = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 2), jnp.ones(2))
    assert jax.vmap(model.apply, (0, None))(ps, x).shape == (2, 4, 1)
    inst = models.from_flax(ref, x)
    np.testing.assert_allclose(inst.apply(inst.init(jax.random.key(0)), x), ref(x), rtol=1e-12)
    with pytest.raises(ValueError, match="module"):
        models.from_flax(42, x)
