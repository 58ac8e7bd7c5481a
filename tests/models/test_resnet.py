"""ResNets with a depth-scaled branch: norms in closed form, the neural ODE limit, depth rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics, models

X = jax.random.normal(jax.random.key(7), (6, 3))
Y = jax.random.normal(jax.random.key(8), (6, 2))


def _loss(model):
    return lambda p: 0.5 * jnp.mean(jnp.sum((model.apply(p, X) - Y) ** 2, axis=1))


@pytest.mark.parametrize(("beta", "depth"), [(0.25, 16), (0.5, 64), (1.0, 64)])
def test_mean_square_norm_is_the_closed_form_product(beta, depth):
    # E|h_L|^2 / |h_0|^2 = (1 + L^{-2 beta} / 2)^L for ReLU full branches with i.i.d. symmetric
    # weights of variance 1/width (exact at every width; module docstring of models.resnet).
    model = models.resnet(16, depth, d_in=3, d_out=2, scaling=beta)

    def ratio(key):
        _, (h0, hs, _) = model.apply(model.init(key), X, return_features=True)
        return jnp.sum(hs[-1] ** 2) / jnp.sum(h0**2)

    r = np.asarray(jax.jit(jax.vmap(ratio))(jax.random.split(jax.random.key(0), 400)))
    exact = (1 + depth ** (-2 * beta) / 2) ** depth
    se = r.std(ddof=1) / np.sqrt(r.size)
    assert abs(r.mean() - exact) < 4 * se + 1e-12, (r.mean(), exact, se)


def test_closed_form_limits_of_the_three_regimes():
    # the three regimes of Marion et al. 2022 at large L: explosion, e^{1/2}, identity
    f = lambda beta, L: (1 + L ** (-2 * beta) / 2) ** L  # noqa: E731
    assert f(0.25, 10_000) > 1e20
    assert abs(f(0.5, 10_000) - np.exp(0.5)) < 1e-4
    assert abs(f(1.0, 10_000) - 1) < 1e-4


def test_one_depth_scaled_step_from_tied_init_is_depth_independent():
    lr, outs = 0.3, {}
    for depth in (4, 32):
        model = models.resnet(8, depth, d_in=3, d_out=2, init="tied", scaling=1.0)
        p = model.init(jax.random.key(1))
        tr = dynamics.gradient_descent(
            _loss(model), p, steps=1, lr=lr, rates=models.depth_rates(p), n_save=2
        )
        q = tr.final
        np.testing.assert_array_equal(q["w"], p["w"])  # dl/dW_k carries V_k = 0
        np.testing.assert_allclose(q["v"], jnp.broadcast_to(q["v"][:1], q["v"].shape), atol=1e-14)
        assert float(jnp.abs(q["v"]).max()) > 1e-3
        outs[depth] = q
    for name in ("v", "embed", "readout"):
        np.testing.assert_allclose(outs[4][name][0], outs[32][name][0], rtol=1e-12, atol=1e-14)


def _ode_output(weights, params, branch="full"):
    field = models.resnet_field(weights, branch=branch)
    traj = dynamics.integrate(
        field, X @ params["embed"], t1=1.0, n_save=2, rtol=1e-11, atol=1e-12, observables={}
    )
    return traj.final @ params["readout"]


def _fitted_order(depths, errors):
    return -np.polyfit(np.log(depths), np.log(errors), 1)[0]


def test_trained_tied_resnet_is_the_euler_scheme_of_its_neural_ode():
    # after one depth-scaled step from the tied init every depth has the same (W, V', A', B'),
    # so one neural ODE dH/ds = relu(H W) V' is the limit of all of them, at Euler's order 1
    depths, errs, ode = [4, 8, 16, 32, 64], [], None
    for depth in depths:
        model = models.resnet(8, depth, d_in=3, d_out=2, init="tied", scaling=1.0)
        p = model.init(jax.random.key(1))
        g = jax.grad(_loss(model))(p)
        q = jax.tree.map(lambda a, b, r: a - 0.5 * r * b, p, g, models.depth_rates(p))
        if ode is None:
            const = {"w": q["w"][0], "v": q["v"][0]}
            ode = _ode_output(lambda s, c=const: c, q)
        errs.append(float(jnp.max(jnp.abs(model.apply(q, X) - ode))))
    assert 0.9 < _fitted_order(depths, errs) < 1.1, errs


@pytest.mark.parametrize("branch", ["full", "simple"])
def test_smooth_resnet_converges_to_its_neural_ode_at_rate_one(branch):
    width, key = 8, jax.random.key(3)
    _, _, kw, kv = jax.random.split(key, 4)
    opts = dict(std=width**-0.5, length_scale=0.25, n_features=64)
    wfn = models.smooth_weights(kw, (width, width), **opts)
    vfn = models.smooth_weights(kv, (width, width), **opts)
    depths, errs, ode = [8, 16, 32, 64], [], None
    for depth in depths:
        model = models.resnet(
            width, depth, d_in=3, d_out=2, init="smooth", scaling=1.0, branch=branch
        )
        p = model.init(key)
        s = jnp.arange(depth) / depth
        np.testing.assert_allclose(p["v"], vfn(s), rtol=1e-12)  # the documented draw
        if ode is None:  # embed and readout do not depend on the depth
            ode = _ode_output(lambda t: {"w": wfn(t), "v": vfn(t)}, p, branch)
        errs.append(float(jnp.max(jnp.abs(model.apply(p, X) - ode))))
    assert 0.85 < _fitted_order(depths, errs) < 1.15, errs


def test_network_is_exactly_euler_of_its_piecewise_constant_field():
    depth = 12
    model = models.resnet(8, depth, d_in=3, d_out=2, scaling=1.0)
    p = model.init(jax.random.key(2))
    field = models.resnet_field(p)
    traj = dynamics.integrate(
        field,
        X @ p["embed"],
        t1=1.0,
        solver="euler",
        adaptive=False,
        dt0=1.0 / depth,
        n_save=2,
        observables={},
    )
    np.testing.assert_allclose(traj.final @ p["readout"], model.apply(p, X), rtol=1e-11, atol=1e-12)


def test_smooth_weights_marginal_variance_and_correlation():
    fn = models.smooth_weights(jax.random.key(0), (200, 200), std=0.5, length_scale=0.2)
    w0, w1 = fn(0.3), fn(0.3 + 0.2)
    # marginal variance std^2 = 0.25 exactly in law; correlation ~ the RFF kernel given omega
    assert abs(float(jnp.var(w0)) - 0.25) < 0.25 * 5 * np.sqrt(2 / 40_000)
    corr = float(jnp.mean(w0 * w1) / 0.25)
    assert 0.3 < corr < 0.9  # exp(-1/2) = 0.61 in expectation over the 64 frequencies


def test_vmap_over_scales_and_seeds_and_jit():
    model = models.resnet(8, 5, d_in=3, d_out=2)
    keys = jax.random.split(jax.random.key(0), 3)
    scales = jnp.array([0.5, 1.0, 2.0])
    ys = jax.jit(jax.vmap(lambda k, s: model.apply(model.init(k, s), X)))(keys, scales)
    one = model.apply(model.init(keys[2], 2.0), X)
    np.testing.assert_allclose(ys[2], one, rtol=1e-12)
    # scale multiplies every parameter
    p1, p2 = model.init(keys[0], 1.0), model.init(keys[0], 2.0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(2 * a, b), p1, p2)


def test_gradient_flow_with_rates_is_the_closed_form():
    # d theta_k/dt = -eta_k theta_k for L = |theta|^2 / 2: theta_k(t) = e^{-eta_k t} theta_k(0)
    p = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    rates = {"a": 2.0, "b": jnp.array([0.5, 1.0])}
    loss = lambda q: 0.5 * sum(jnp.sum(v**2) for v in jax.tree.leaves(q))  # noqa: E731
    tr = dynamics.gradient_flow(loss, p, t1=1.0, rates=rates, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tr.final["a"], np.exp(-2.0) * np.ones(3), rtol=1e-8)
    np.testing.assert_allclose(tr.final["b"][0], np.exp(-0.5) * np.ones(2), rtol=1e-8)
    np.testing.assert_allclose(tr.final["b"][1], np.exp(-1.0) * np.ones(2), rtol=1e-8)
    gd = dynamics.gradient_descent(loss, p, steps=3, lr=0.1, rates=rates, n_save=2)
    np.testing.assert_allclose(gd.final["a"], (1 - 0.2) ** 3 * np.ones(3), rtol=1e-12)
    np.testing.assert_allclose(gd.final["b"][0], (1 - 0.05) ** 3 * np.ones(2), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(width=0), "width"),
        (dict(depth=-1), "depth"),
        (dict(init="zeros"), "init"),
        (dict(branch="deep"), "branch"),
        (dict(activation="swish3"), "activation"),
        (dict(scaling="half"), "scaling"),
        (dict(scaling=lambda L: "x"), "scaling"),
        (dict(scaling=-1.0), "scaling"),
    ],
)
def test_bad_resnet_arguments(kwargs, match):
    args = dict(width=4, depth=3, d_in=3) | kwargs
    with pytest.raises(ValueError, match=match):
        models.resnet(**args)


def test_bad_batch_and_rates():
    model = models.resnet(4, 3, d_in=3)
    p = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match="x"):
        model.apply(p, jnp.ones((2, 4)))
    loss = lambda q: jnp.sum(model.apply(q, X) ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="rates"):
        dynamics.gradient_flow(loss, p, t1=1.0, rates={"w": 1.0})
    with pytest.raises(ValueError, match="rates"):
        dynamics.gradient_flow(loss, p, t1=1.0, rates=models.depth_rates(p) | {"v": jnp.ones(5)})
    with pytest.raises(ValueError, match="rates"):
        dynamics.gradient_descent(loss, p, steps=2, lr=0.1, rates=-1.0)
