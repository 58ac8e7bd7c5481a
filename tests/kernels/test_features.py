"""Feature updates vs the backward pass, steering per-layer rates, and the muP coordinate check."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flowax import kernels, models
from flowax.dynamics._rates import scale_by_rates
from flowax.kernels.features import _norm, per_layer

X = jax.random.normal(jax.random.key(1), (8, 5))
Y = jax.random.normal(jax.random.key(2), (8, 2))
MLP = models.mlp([5, 32, 32, 32, 2], activation="tanh", bias_std=0.5)
RESNET = models.resnet(16, 6, d_in=5, d_out=2, scaling=0.5)


def _mse(model):
    return lambda p, x=X, y=Y: 0.5 * jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, axis=1))


def _sq_norms_per_layer(grads, labels, k_layers):
    # |grad_{theta_k} L|^2 for every layer label k
    out = np.zeros(k_layers)
    for lab, sub in zip(
        jax.tree.leaves(labels), jax.tree.structure(labels).flatten_up_to(grads), strict=True
    ):
        for leaf in jax.tree.leaves(sub):
            lab_arr = np.asarray(lab)
            sq = np.asarray(jnp.sum(leaf**2, axis=tuple(range(lab_arr.ndim, leaf.ndim))))
            np.add.at(out, lab_arr, sq)
    return out


@pytest.mark.parametrize("model", [MLP, RESNET], ids=["mlp", "resnet"])
def test_feature_speed_identity_and_finite_differences(model):
    p = model.init(jax.random.key(0))
    g = jax.grad(_mse(model))(p)
    labels = models.layer_labels(p)
    k_layers = int(max(np.max(v) for v in jax.tree.leaves(labels))) + 1
    etas = np.linspace(0.2, 1.0, k_layers)  # a different rate per layer
    rates = jax.tree.map(lambda lab: jnp.asarray(etas)[np.asarray(lab)], labels)
    upd = jax.tree.map(jnp.negative, scale_by_rates(rates, g))
    out = jax.jit(lambda p, u: kernels.feature_updates(model.apply, p, (X, Y), u))(p, upd)
    # |df| |b| cos = -<b, df> = sum_{k <= l} eta_k |grad_k L|^2
    expected = np.cumsum(etas * _sq_norms_per_layer(g, labels, k_layers))
    np.testing.assert_allclose(out.inner, expected, rtol=1e-10)
    np.testing.assert_allclose(out.delta_norm * out.backward_norm * out.cos, expected, rtol=1e-10)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), out.grads, g)
    # delta f is the derivative of the features along the update (central difference, eps^2)
    eps = 1e-5
    feats = lambda q: model.apply(q, X, return_features=True)[1]  # noqa: E731
    plus = feats(jax.tree.map(lambda a, u: a + eps * u, p, upd))
    minus = feats(jax.tree.map(lambda a, u: a - eps * u, p, upd))
    fd = jax.tree.map(lambda a, b: (a - b) / (2 * eps), plus, minus)
    err = per_layer(_norm, jax.tree.map(jnp.subtract, fd, out.delta)) / out.delta_norm
    assert float(err.max()) < 1e-8


def test_output_cos_is_the_alignment_of_the_ntk_with_the_backward_pass():
    p = MLP.init(jax.random.key(0))
    lr = 0.3
    g = jax.grad(_mse(MLP))(p)
    out = kernels.feature_updates(MLP.apply, p, (X, Y), jax.tree.map(lambda v: -lr * v, g))
    theta = kernels.empirical_ntk(MLP.apply, p, X, trace_axes=())  # [n, n, d, d]
    n, d = Y.shape
    theta = jnp.transpose(theta, (0, 2, 1, 3)).reshape(n * d, n * d)
    b = out.backward[-1][0].reshape(-1)
    tb = lr * theta @ b
    np.testing.assert_allclose(out.delta[-1][0].reshape(-1), -tb, rtol=1e-10, atol=1e-14)
    cos = b @ tb / (jnp.linalg.norm(b) * jnp.linalg.norm(tb))
    np.testing.assert_allclose(out.cos[-1], cos, rtol=1e-10)


def _cos_per_layer(model, x, y, seeds=8):
    def one(k):
        p = model.init(k)
        g = jax.grad(lambda q: 0.5 * jnp.mean(jnp.sum((model.apply(q, x) - y) ** 2, 1)))(p)
        return kernels.feature_updates(model.apply, p, (x, y), jax.tree.map(jnp.negative, g)).cos

    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), seeds)))


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_cos_decays_like_one_over_sqrt_depth_in_mlps_not_in_resnets():
    # Chizat and Netrapalli (2024): cos theta_l = Theta(l^{-1/2}) for i.i.d. ReLU MLPs and
    # Theta(1) for ResNets with branch 1/sqrt(L). Measured (width 512, 24 layers, 8 seeds):
    # slope -0.54; here width 256 and 12 layers, slope within +-0.2 of -1/2.
    x, y = X[:1, :], Y[:1, :1]
    depth = 12
    mlp = models.mlp([5] + [256] * depth + [1], activation="relu", weight_std=2**0.5)
    cos = _cos_per_layer(mlp, x, y).mean(axis=0)[:depth]
    layers = np.arange(1, depth + 1)
    slope = np.polyfit(np.log(layers[2:]), np.log(cos[2:]), 1)[0]
    assert -0.7 < slope < -0.3, (slope, cos)
    res = models.resnet(256, depth, d_in=5, d_out=1, scaling=0.5)
    cos_res = _cos_per_layer(res, x, y).mean(axis=0)
    assert cos_res.min() > 0.6, cos_res
    assert cos_res[depth] > 2 * cos[-1]


def _steer(model, targets, p, g, **kw):
    tx = kernels.steer_feature_speed(targets, model.apply, **kw)
    state = tx.init(p)
    return tx, jax.jit(lambda g, s, p: tx.update(g, s, p, x=X))(g, state, p)


@pytest.mark.parametrize(
    ("model", "targets"),
    [(MLP, [0.05, 0.1, 0.2, 0.5]), (RESNET, lambda k: np.r_[0.002 * np.arange(1, k) ** 1.5, 0.15])],
    ids=["mlp", "resnet"],
)
def test_steering_reaches_reachable_targets(model, targets):
    p = model.init(jax.random.key(0))
    g = jax.grad(_mse(model))(p)
    _, (upd, state) = _steer(model, targets, p, g)
    k_layers = state.rates.shape[0]
    want = np.asarray(targets(k_layers) if callable(targets) else targets)
    out = kernels.feature_updates(model.apply, p, (X, Y), upd)
    # first order: exact; one real step: within 5% (second-order terms at these speeds)
    np.testing.assert_allclose(out.speed, want, rtol=1e-8)
    np.testing.assert_allclose(state.achieved, want, rtol=1e-8)
    feats = lambda q: model.apply(q, X, return_features=True)[1]  # noqa: E731
    f0, f1 = feats(p), feats(optax.apply_updates(p, upd))
    actual = per_layer(_norm, jax.tree.map(jnp.subtract, f1, f0)) / per_layer(_norm, f0)
    np.testing.assert_allclose(actual, want, rtol=0.05)
    # the update of layer k is -eta_k times its gradient
    labels = models.layer_labels(p)
    for lab, gs, us in zip(
        jax.tree.leaves(labels),
        jax.tree.structure(labels).flatten_up_to(g),
        jax.tree.structure(labels).flatten_up_to(upd),
        strict=True,
    ):
        for gl, ul in zip(jax.tree.leaves(gs), jax.tree.leaves(us), strict=True):
            eta = np.asarray(state.rates)[np.asarray(lab)]
            eta = eta.reshape(eta.shape + (1,) * (gl.ndim - eta.ndim))
            np.testing.assert_allclose(ul, -eta * gl, rtol=1e-12, atol=1e-15)


def test_unreachable_target_takes_the_closest_rate_and_says_so():
    p = MLP.init(jax.random.key(0))
    g = jax.grad(_mse(MLP))(p)
    # a flat target: the first layer's update alone moves the later ones by more (1.4-4.7x)
    _, (upd, state) = _steer(MLP, 0.05, p, g)
    out = kernels.feature_updates(MLP.apply, p, (X, Y), upd)
    np.testing.assert_allclose(state.achieved, out.speed, rtol=1e-8)
    assert abs(float(out.speed[0]) - 0.05) < 1e-9
    assert np.all(np.asarray(out.speed[1:]) > 0.05)
    assert np.all(np.asarray(state.rates) >= 0)


def test_steering_composes_with_optax_chain_and_can_freeze_rates():
    p = MLP.init(jax.random.key(0))
    g = jax.grad(_mse(MLP))(p)
    targets = [0.05, 0.1, 0.2, 0.5]
    _, (alone, _) = _steer(MLP, targets, p, g)
    chain = optax.chain(optax.scale(2.0), kernels.steer_feature_speed(targets, MLP.apply))
    upd, _ = chain.update(jax.tree.map(lambda v: 0.5 * v, g), chain.init(p), p, x=X)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), upd, alone)
    # every_step=False: the rates of the first step are kept
    tx = kernels.steer_feature_speed(targets, MLP.apply, every_step=False)
    state = tx.init(p)
    _, state = tx.update(g, state, p, x=X)
    q = optax.apply_updates(p, jax.tree.map(lambda v: -0.1 * v, g))
    _, state2 = tx.update(jax.grad(_mse(MLP))(q), state, q, x=X)
    np.testing.assert_array_equal(state2.rates, state.rates)
    with pytest.raises(ValueError, match="x"):
        tx.update(g, state, p)


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_coord_check_slopes_mup_flat_standard_grows():
    x, y = X[:, :], Y[:, :1]
    widths = [64, 128, 256, 512]

    def check(parametrization, lr):
        return kernels.coord_check(
            lambda w: models.mlp([5, w, w, 1], parametrization=parametrization),
            widths,
            optimizer=optax.sgd(lr),
            steps=2,
            batch=(x, y),
            key=jax.random.key(0),
            seeds=2,
        )

    mup, sp = check("mup", 0.1), check("standard", 0.1 / 64)
    # measured with widths 64..1024 and 4 seeds: muP |slopes| < 0.04; standard: -0.5, 0.5, 1.0
    assert np.abs(mup.slopes).max() < 0.15, mup.slopes
    np.testing.assert_allclose(sp.slopes[0], [-0.5, 0.5, 1.0], atol=0.15)
    assert mup.trained.shape == (4, 2, 3) and mup.loss.shape == (4, 2)
    # at init every parametrization has width-independent hidden coordinates
    assert np.abs(sp.init_slopes[:2]).max() < 0.1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kernels.feature_updates(MLP.apply, MLP.init(jax.random.key(0)), X, None), "batch"),
        (
            lambda: kernels.feature_updates(
                MLP.apply, MLP.init(jax.random.key(0)), (X, Y), {"w": 1.0}
            ),
            "updates",
        ),
        (
            lambda: kernels.feature_updates(
                MLP.apply,
                MLP.init(jax.random.key(0)),
                (X, Y),
                MLP.init(jax.random.key(0)),
                loss="hinge",
            ),
            "loss",
        ),
        (
            lambda: kernels.steer_feature_speed([0.1, -1.0, 0.1, 0.1], MLP.apply).init(
                MLP.init(jax.random.key(0))
            ),
            "targets",
        ),
        (
            lambda: kernels.steer_feature_speed([0.1, 0.1], MLP.apply).init(
                MLP.init(jax.random.key(0))
            ),
            "targets",
        ),
        (lambda: kernels.steer_feature_speed(0.1, "apply"), "apply"),
        (
            lambda: kernels.coord_check(
                lambda w: MLP,
                [64, 32],
                optimizer=optax.sgd(0.1),
                steps=1,
                batch=(X, Y),
                key=jax.random.key(0),
            ),
            "widths",
        ),
        (
            lambda: kernels.coord_check(
                lambda w: MLP,
                [32, 64.5],
                optimizer=optax.sgd(0.1),
                steps=1,
                batch=(X, Y),
                key=jax.random.key(0),
            ),
            "widths",
        ),
        (
            lambda: kernels.coord_check(
                lambda w: MLP,
                [32, 64],
                optimizer=optax.sgd,
                steps=1,
                batch=(X, Y),
                key=jax.random.key(0),
            ),
            "optimizer",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_flax_linen_features_equal_the_flowax_mlp():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, w in enumerate([32, 32, 32]):
                x = jnp.tanh(nn.Dense(w, use_bias=False, name=f"hidden_{i}")(x))
            return nn.Dense(2, use_bias=False, name="out")(x)

    # the taps are the Dense outputs (before tanh), as flowax's mlp features
    net = models.from_flax(Net(), X, features=["hidden_0", "hidden_1", "hidden_2", "out"])
    mlp = models.mlp([5, 32, 32, 32, 2], activation="tanh")
    fp = net.init(jax.random.key(0))
    mp = tuple({"w": fp[n]["kernel"]} for n in ["hidden_0", "hidden_1", "hidden_2", "out"])
    g = jax.grad(_mse(net))(fp)
    upd = jax.tree.map(lambda v: -0.2 * v, g)
    mupd = tuple({"w": upd[n]["kernel"]} for n in ["hidden_0", "hidden_1", "hidden_2", "out"])
    a = kernels.feature_updates(net.apply, fp, (X, Y), upd)
    b = kernels.feature_updates(mlp.apply, mp, (X, Y), mupd)
    for field in ("inner", "cos", "speed", "backward_norm"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-10)
    with pytest.raises(ValueError, match="features"):
        models.from_flax(Net(), X, features=["nope"]).apply(fp, X, return_features=True)
    with pytest.raises(ValueError, match="features"):
        models.from_flax(Net(), X, features=[3])
