"""Infinite-width NNGP/NTK: closed forms vs quadrature, and vs Monte Carlo over wide networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import kernels, models

X = jax.random.normal(jax.random.key(0), (4, 3)) * jnp.array([[1.0, 2.0, 0.5]])


@pytest.mark.parametrize(
    "activation,degree,rtol",
    [("identity", 16, 1e-13), ("erf", 160, 1e-8), ("relu", 300, 2e-2)],
)
def test_closed_forms_match_quadrature(activation, degree, rtol):
    # Gauss-Hermite is exact for polynomials (identity); for erf the error decays geometrically
    # in the number of nodes (measured: 4e-6 at 100, 8e-9 at 150 nodes for this net); for relu,
    # whose kink defeats it, only like 1/degree (measured 3e-2 at 100, 2e-2 at 150 nodes for the
    # NTK, half that for the NNGP): at 300 nodes the closed form must agree within 2e-2.
    kw = dict(weight_std=1.4, bias_std=0.2)
    closed = kernels.mlp_kernel(3, activation=activation, **kw)(X)
    fn = models.ACTIVATIONS[activation]
    quad = kernels.mlp_kernel(3, activation=lambda t: fn(t), quadrature_degree=degree, **kw)(X)
    np.testing.assert_allclose(quad.nngp, closed.nngp, rtol=rtol)
    np.testing.assert_allclose(quad.ntk, closed.ntk, rtol=rtol)


def test_relu_first_layers_by_hand():
    # depth 1: K_2 = W^2 sqrt(q q') (sin t + (pi - t) cos t) / (2 pi) + b^2 with K_1 = x.x'/d
    x = jnp.array([[1.0, 0.0], [0.6, 0.8]])  # unit norms, angle t0 = arccos(0.6)
    k = kernels.mlp_kernel(1, activation="relu", weight_std=2.0, bias_std=0.0)(x)
    q = 4.0 * 1.0 / 2  # W^2 |x|^2 / d
    t = np.arccos(0.6)
    k12 = 4.0 * q * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)
    np.testing.assert_allclose(k.nngp[0, 1], k12, rtol=1e-12)
    np.testing.assert_allclose(k.nngp[0, 0], 4.0 * q / 2, rtol=1e-12)
    theta12 = k12 + 4.0 * (np.pi - t) / (2 * np.pi) * 4.0 * 0.6 / 2
    np.testing.assert_allclose(k.ntk[0, 1], theta12, rtol=1e-12)


def _wide_net(width, norm, activation="relu", outputs=64):
    """2 hidden layers (+ layer norm), NTK parametrization, W_std 1.4, b_std 0.2."""
    phi = models.ACTIVATIONS[activation]
    ws, bs = 1.4, 0.2

    def apply(params, x):
        z = x
        for i, (w, b) in enumerate(params):
            h = ws * z @ w / jnp.sqrt(z.shape[-1]) + bs * b[None, :]
            if i == len(params) - 1:
                return h
            z = phi(h)
            if norm:
                z = (z - z.mean(-1, keepdims=True)) / z.std(-1, keepdims=True)

    def init(key):
        dims = [3, width, width, outputs]
        keys = jax.random.split(key, 6)
        return [
            (jax.random.normal(keys[2 * i], (a, b)), jax.random.normal(keys[2 * i + 1], (b,)))
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
        ]

    return apply, init


@pytest.mark.parametrize(
    "activation,norm",
    [("relu", None), ("relu", "layernorm"), pytest.param("erf", None, marks=pytest.mark.slow)],
)
def test_analytic_matches_wide_networks(activation, norm):
    # Monte Carlo over 16 draws of networks of widths 512 and 2048: the mean empirical NNGP
    # (outputs averaged) and NTK match the analytic kernels within 4 standard errors (these
    # shrink like width^-1/2) plus the O(1/width) finite-width bias (allowed: 4/width relative).
    analytic = kernels.mlp_kernel(
        2, activation=activation, weight_std=1.4, bias_std=0.2, normalization=norm
    )(X)
    for width in (512, 2048):
        apply, init = _wide_net(width, norm, activation)

        def sample(key, apply=apply, init=init):
            p = init(key)
            out = apply(p, X)
            nngp = out @ out.T / out.shape[1]
            ntk = kernels.empirical_ntk(apply, p, X, method="structured", trace_axes=(-1,))
            return nngp, ntk

        nngp, ntk = jax.lax.map(sample, jax.random.split(jax.random.key(width), 16))
        for name, mc, ref in (("nngp", nngp, analytic.nngp), ("ntk", ntk, analytic.ntk)):
            se = mc.std(0) / np.sqrt(mc.shape[0])
            err = jnp.abs(mc.mean(0) - ref)
            tol = 4 * se + 4 / width * jnp.abs(ref)
            assert bool(jnp.all(err <= tol)), (norm, width, name, float(jnp.max(err / tol)))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: kernels.mlp_kernel(0), "depth"),
        (lambda: kernels.mlp_kernel(2, activation="swish"), "activation: unknown"),
        (lambda: kernels.mlp_kernel(2, normalization="batchnorm"), "normalization"),
        (lambda: kernels.mlp_kernel(2, weight_std=0.0), "weight_std"),
        (lambda: kernels.mlp_kernel(2, bias_std=-1.0), "bias_std"),
        (lambda: kernels.mlp_kernel(2)(jnp.ones((3, 2)), jnp.ones((3, 4))), r"x2: expected"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
