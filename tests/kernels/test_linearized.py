"""Linearized dynamics: kernel_flow is the exact flow of the linear model, and networks approach
it at the predicted width^-1/2 rate; monitors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics, kernels, models

N, D = 8, 3
X = jax.random.normal(jax.random.key(0), (N, D))
Y = jnp.sin(2 * X[:, :1])
XT = jax.random.normal(jax.random.key(1), (3, D))
TS = jnp.linspace(0.0, 6.0, 13)


def _train(apply, params):
    """Gradient flow of L = 1/(2n) sum (f - y)^2, outputs on train and test at TS."""
    loss = lambda p: 0.5 * jnp.mean((apply(p, X) - Y) ** 2)  # noqa: E731
    obs = {"train": lambda t, p: apply(p, X), "test": lambda t, p: apply(p, XT)}
    traj = dynamics.gradient_flow(
        loss, params, t1=TS[-1], ts=TS, observables=obs, rtol=1e-10, atol=1e-12
    )
    return traj.values["train"], traj.values["test"]


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_kernel_flow_is_the_flow_of_the_linearized_model():
    model = models.mlp([D, 32, 1], activation="tanh", parametrization="ntk", bias_std=0.5)
    p0 = model.init(jax.random.key(2))
    lin = kernels.linearize(model.apply, p0)
    np.testing.assert_allclose(lin(p0, X), model.apply(p0, X), rtol=1e-14)
    ntk = kernels.empirical_ntk(model.apply, p0, X, trace_axes=(-1,)) / N  # mean loss
    ntk_tx = kernels.empirical_ntk(model.apply, p0, XT, X, trace_axes=(-1,)) / N
    predict = kernels.kernel_flow(ntk, Y)
    f_train, f_test = predict(TS, model.apply(p0, X), model.apply(p0, XT), ntk_tx)
    g_train, g_test = _train(lin, p0)
    np.testing.assert_allclose(f_train, g_train, atol=1e-8)
    np.testing.assert_allclose(f_test, g_test, atol=1e-8)
    # t -> infinity interpolates the training set (Theta is full rank here)
    f_inf, none = predict(jnp.array([1e6]), model.apply(p0, X))
    assert none is None
    np.testing.assert_allclose(f_inf[0], Y, atol=1e-8)


@pytest.mark.slow  # 37 s; the linearization itself is checked by the kernel-flow test
def test_network_approaches_its_linearization_as_width_grows():
    # RMS over training outputs, times and 4 seeds of f_t - f_lin_t, widths 64..4096. Lee et al.
    # (2019) bound it by O(width^-1/2); with the linearization taken at the network's own
    # initial NTK (as here) the deviation is O(1/width) (Dyer and Gur-Ari 2019; Huang and Yau
    # 2019): the fitted slope must be -1 within 0.3 (each point's log has a spread of ~0.3 from
    # 4 seeds; over two decades that puts the slope's standard error near 0.1), which is in
    # particular faster than the -1/2 of the bound.
    widths = np.array([64, 256, 1024, 4096])
    gaps = []
    keys = jnp.stack([jax.random.key(10 + seed) for seed in range(4)])
    for width in widths:
        model = models.mlp([D, int(width), 1], activation="tanh", parametrization="ntk")

        @jax.jit
        def gap(key, model=model):  # one compile per width, the 4 seeds under vmap
            p0 = model.init(key)
            f, _ = _train(model.apply, p0)
            ntk = kernels.empirical_ntk(model.apply, p0, X, trace_axes=(-1,)) / N
            f_lin, _ = kernels.kernel_flow(ntk, Y)(TS, model.apply(p0, X))
            return jnp.mean((f - f_lin) ** 2)

        gaps.append(np.sqrt(np.mean(np.asarray(jax.vmap(gap)(keys)))))
    slope = np.polyfit(np.log(widths), np.log(gaps), 1)[0]
    assert abs(slope + 1.0) < 0.3, (slope, gaps)


def test_monitors():
    model = models.mlp([D, 64, 1], activation="relu", parametrization="ntk")
    p0 = model.init(jax.random.key(3))
    drift = kernels.ntk_drift(model.apply, p0)
    assert float(drift(p0, X)) == 0.0
    # doubling the readout doubles J for the hidden weights and keeps it for the readout
    p1 = (p0[0], {"w": 2 * p0[1]["w"]})
    k0 = kernels.empirical_ntk(model.apply, p0, X, trace_axes=(-1,))
    k1 = kernels.empirical_ntk(model.apply, p1, X, trace_axes=(-1,))
    np.testing.assert_allclose(drift(p1, X), jnp.linalg.norm(k1 - k0) / jnp.linalg.norm(k0))
    # alignment: 1 for K = y y^T, and invariant to scaling K
    y = jnp.arange(1.0, 5.0)
    np.testing.assert_allclose(kernels.kernel_alignment(3 * jnp.outer(y, y), y), 1.0, rtol=1e-14)
    # effective rank: r for a projection of rank r (entropy and participation)
    q = jnp.linalg.qr(jax.random.normal(jax.random.key(4), (6, 6)))[0][:, :3]
    proj = q @ q.T
    np.testing.assert_allclose(kernels.effective_rank(proj), 3.0, rtol=1e-10)
    np.testing.assert_allclose(kernels.effective_rank(proj, kind="participation"), 3.0, rtol=1e-10)
    with pytest.raises(ValueError, match="kind"):
        kernels.effective_rank(proj, kind="stable")
    with pytest.raises(ValueError, match="y: expected shape"):
        kernels.kernel_alignment(proj, jnp.ones(5))
    with pytest.raises(ValueError, match="^f0_train: expected shape"):
        kernels.kernel_flow(proj, jnp.ones(6))(TS, jnp.ones(5))
    # a kernel that is not PSD is refused (regression: its eigenvalues were clamped silently)
    with pytest.raises(ValueError, match="^ntk_train: expected a positive semi-definite"):
        kernels.kernel_flow(-proj, jnp.ones(6))
    with pytest.raises(ValueError, match="^ntk_train: expected a symmetric"):
        kernels.kernel_flow(proj + jnp.triu(jnp.ones((6, 6)), 1), jnp.ones(6))
