"""Empirical NTK: every method against the explicit jax.jacobian formula, on three models."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import kernels, models


def explicit_ntk(apply, params, x1, x2, trace_axes):
    """sum_leaves J1 J2^T from whole-batch jax.jacobian, NT's layout, traced axes averaged."""
    j1 = jax.jacobian(lambda p: apply(p, x1))(params)
    j2 = jax.jacobian(lambda p: apply(p, x2))(params)
    out = apply(params, x1).shape[1:]
    total = 0.0
    for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2), strict=True):
        a = a.reshape(x1.shape[0], -1, int(np.prod(a.shape[1 + len(out) :], dtype=int)))
        b = b.reshape(x2.shape[0], -1, a.shape[-1])
        total = total + jnp.einsum("aip,bjp->abij", a, b)
    total = total.reshape(x1.shape[0], x2.shape[0], *out, *out)
    k = len(out)
    # [n1, n2, o..., o'...] -> interleave pairs, then average the traced ones
    perm = [0, 1] + [i for a in range(k) for i in (2 + a, 2 + k + a)]
    total = jnp.transpose(total, perm)
    for a in sorted(((t % (k + 1)) for t in trace_axes), reverse=True):
        ax = 2 + 2 * (a - 1)
        total = jnp.trace(total, axis1=ax, axis2=ax + 1) / out[a - 1]
    return total


class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(3, (3, 3), padding="VALID")(x))
        x = nn.tanh(nn.Dense(5)(x.reshape(x.shape[0], -1)))
        return nn.Dense(2)(x)


class TwoHeads(nn.Module):  # outputs [n, 2, 3]
    @nn.compact
    def __call__(self, x):
        h = nn.gelu(nn.Dense(7)(x))
        return nn.Dense(6)(h).reshape(x.shape[0], 2, 3)


def _models():
    key = jax.random.key(0)
    mlp = models.mlp([4, 9, 9, 3], activation="tanh", parametrization="ntk", bias_std=0.3)
    cnn = models.from_flax(SmallCNN(), jnp.ones((1, 6, 6, 1)))
    two = models.from_flax(TwoHeads(), jnp.ones((1, 4)))
    x_mlp = jax.random.normal(key, (5, 4))
    x_cnn = jax.random.normal(key, (4, 6, 6, 1))
    f64 = lambda p: jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p)  # noqa: E731
    return {
        "mlp": (mlp.apply, mlp.init(jax.random.key(1)), x_mlp),
        "cnn": (cnn.apply, f64(cnn.init(jax.random.key(2))), x_cnn),  # flax inits float32
        "two_outputs": (two.apply, f64(two.init(jax.random.key(3))), x_mlp),
    }


MODELS = _models()


# every model with the default trace_axes=(-1,); all output pairs (trace_axes=()) -- 2-3x the
# cost -- in the slow run (the () paths, middle axis and blocks, are covered by default by
# test_two_outputs_trace_middle_axis_and_blocks)
AGREE = [(n, (-1,)) for n in MODELS] + [pytest.param(n, (), marks=pytest.mark.slow) for n in MODELS]


@pytest.mark.parametrize("name,trace_axes", AGREE)
def test_methods_agree_with_explicit_jacobians(name, trace_axes):
    apply, params, x = MODELS[name]
    x1, x2 = x[:3], x[1:]
    ref = explicit_ntk(apply, params, x1, x2, trace_axes)
    scale = float(jnp.max(jnp.abs(ref)))
    for method in ("jacobian", "ntvp", "structured", "auto"):
        k = kernels.empirical_ntk(apply, params, x1, x2, method=method, trace_axes=trace_axes)
        assert k.shape == ref.shape, (method, k.shape, ref.shape)
        np.testing.assert_allclose(k, ref, rtol=0, atol=1e-10 * scale, err_msg=method)
    # x2 = None: the same as x2 = x1, and symmetric
    k11 = kernels.empirical_ntk(apply, params, x1, method="structured", trace_axes=trace_axes)
    np.testing.assert_allclose(
        k11, explicit_ntk(apply, params, x1, x1, trace_axes), atol=1e-10 * scale
    )


def test_two_outputs_trace_middle_axis_and_blocks():
    apply, params, x = MODELS["two_outputs"]
    ref = explicit_ntk(apply, params, x, x, (1,))
    assert ref.shape == (5, 5, 3, 3)
    k = kernels.empirical_ntk(apply, params, x, trace_axes=(1,), method="ntvp")
    np.testing.assert_allclose(k, ref, atol=1e-10 * float(jnp.max(jnp.abs(ref))))
    kb = kernels.empirical_ntk(
        apply, params, x, x[:4], method="jacobian", trace_axes=(), batch_size=2
    )
    np.testing.assert_allclose(kb, explicit_ntk(apply, params, x, x[:4], ()), atol=1e-12)


def test_default_trace_axes_and_blocks_under_jit_compile_once():
    # neural-tangents' default: the last output axis is traced (averaged)
    apply, params, x = MODELS["two_outputs"]
    k = kernels.empirical_ntk(apply, params, x)
    np.testing.assert_allclose(k, explicit_ntk(apply, params, x, x, (-1,)), rtol=1e-10)
    # blocks with params as an argument: one compiled program for new parameters
    fn = jax.jit(
        chex.assert_max_traces(
            lambda p: kernels.empirical_ntk(apply, p, x, method="jacobian", batch_size=2), n=1
        )
    )
    np.testing.assert_allclose(fn(params), k, rtol=1e-10)
    doubled = jax.tree_util.tree_map(lambda w: 2.0 * w, params)
    np.testing.assert_allclose(fn(doubled), kernels.empirical_ntk(apply, doubled, x), rtol=1e-10)


def test_structured_finds_the_dense_matrices():
    from flowax.kernels import _structured

    apply, params, x = MODELS["mlp"]
    assert _structured.dense_parameter_count(apply, params, x[0]) == 4 * 9 + 9 * 9 + 9 * 3
    apply, params, x = MODELS["cnn"]  # conv kernel and biases go through the fallback
    plan = _structured._Plan(apply, params, x[0])
    assert len(plan.dense) == 2 and len(plan.rest) == 4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(x2=jnp.ones((2, 5))), r"x2: expected shape \[n2, 4\]"),
        (dict(method="fast"), "method: expected one of"),
        (dict(trace_axes=(0,)), "trace_axes: the batch axis"),
        (dict(trace_axes=(3,)), "trace_axes: expected output axes"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_input(kwargs, match):
    apply, params, x = MODELS["mlp"]
    with pytest.raises(ValueError, match=match):
        kernels.empirical_ntk(apply, params, x, **kwargs)


def test_params_rejected_by_apply():
    apply, params, x = MODELS["mlp"]
    with pytest.raises(ValueError, match=r"^apply: apply\(params, x1\[:1\]\) failed"):
        kernels.empirical_ntk(apply, params[:2], x)  # a tuple of 2 layers, not 3
