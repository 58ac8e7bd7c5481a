"""(lam, tau)-barycenters on a fixed support: Gaussian closed form, POT at tau = lam."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics.measures import Particles

X = np.linspace(-9, 9, 721)  # spacing h = 0.025
MEANS = np.array([-1.0, 0.5, 2.0])
W = jnp.array([0.2, 0.5, 0.3])


def gaussian(x, m, v):
    w = np.exp(-((x - m) ** 2) / (2 * v))
    return Particles(jnp.asarray(w / w.sum()), jnp.asarray(x[:, None]))


@pytest.mark.parametrize(
    "variances,lam,tau",
    [
        ((1.0, 1.0, 1.0), 0.2, 0.2),
        ((1.0, 1.0, 1.0), 0.2, 0.1),
        ((0.36, 1.0, 2.25), 0.2, 0.05),
        ((0.36, 1.0, 2.25), 0.5, 0.5),
    ],
)
def test_gaussian_inputs_match_closed_form(variances, lam, tau):
    measures = [gaussian(X, m, v) for m, v in zip(MEANS, variances, strict=True)]
    res = dynamics.transport.barycenter_fixed_support(
        jnp.asarray(X[:, None]), measures, W, lam=lam, tau=tau
    )
    assert bool(res.converged)
    mu = np.asarray(res.histogram)
    mean = mu @ X
    var = mu @ (X - mean) ** 2
    cm, cv = dynamics.transport.gaussian_barycenter(
        MEANS[:, None], jnp.asarray(variances), W, lam=lam, tau=tau
    )
    # Sampling densities on a grid of step h shifts variances by ~h^2/12 = 5e-5 (Sheppard);
    # truncation at 9 sd is negligible.
    np.testing.assert_allclose(mean, float(cm[0]), atol=1e-5)
    np.testing.assert_allclose(var, float(cv), atol=1e-4)


def test_tau_equals_lam_is_pots_sinkhorn_barycenter():
    ot = pytest.importorskip("ot")
    x = np.linspace(-5, 6, 200)
    measures = [gaussian(x, m, v) for m, v in zip(MEANS, (0.5, 1.0, 1.5), strict=True)]
    lam = 0.3
    res = dynamics.transport.barycenter_fixed_support(
        jnp.asarray(x[:, None]), measures, W, lam=lam, tau=lam, threshold=1e-12
    )
    a = np.stack([np.asarray(m.weights) for m in measures], axis=1)
    cost = 0.5 * (x[:, None] - x[None, :]) ** 2
    ref = ot.bregman.barycenter(
        a, cost, lam, weights=np.asarray(W), method="sinkhorn_log", numItermax=20000, stopThr=1e-14
    )
    np.testing.assert_allclose(np.asarray(res.histogram), ref, atol=1e-8)
    # the same targets as histograms on a 1-D grid: shared separable kernel, kernel mode
    hist = jnp.stack([m.weights for m in measures])
    res = dynamics.transport.barycenter_fixed_support(
        dynamics.transport.TensorGrid((x,)),
        hist,
        W,
        lam=lam,
        tau=lam,
        threshold=1e-12,
        mode="kernel",
    )
    np.testing.assert_allclose(np.asarray(res.histogram), ref, atol=1e-8)


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_debiasing_orders():
    # Equal variances a: error of the variance vs a is O(lam) at tau = lam and tau = 0 (slopes 1)
    # and O(lam^2) at tau = lam/2 (slope 2); closed form and solver, fitted on lam in [0.05, 0.2].
    a = 1.0
    lams = np.array([0.05, 0.1, 0.2])
    measures = [gaussian(X, m, a) for m in MEANS]
    slopes = {}
    for name, factor in (("tau=lam", 1.0), ("tau=lam/2", 0.5)):
        errs = []
        for lam in lams:
            res = dynamics.transport.barycenter_fixed_support(
                jnp.asarray(X[:, None]), measures, W, lam=lam, tau=factor * lam
            )
            mu = np.asarray(res.histogram)
            errs.append(abs(mu @ (X - mu @ X) ** 2 - a))
        slopes[name] = np.polyfit(np.log(lams), np.log(errs), 1)[0]
    # closed-form slopes 1 and 2 (tau = 0 has no fixed-support solution: mu -> Dirac support)
    assert abs(slopes["tau=lam"] - 1) < 0.1, slopes
    assert abs(slopes["tau=lam/2"] - 2) < 0.2, slopes


def test_jit_vmap_and_bad_input():
    measures = [gaussian(np.linspace(-3, 3, 40), m, 1.0) for m in (-0.5, 0.5)]
    sup = jnp.linspace(-3, 3, 40)[:, None]
    w = jnp.array([0.5, 0.5])
    run = jax.jit(
        lambda lam, tau: (
            dynamics.transport.barycenter_fixed_support(
                sup, measures, w, lam=lam, tau=tau, max_iterations=500
            ).histogram
        )
    )
    batched = jax.vmap(run)(jnp.array([0.3, 0.5]), jnp.array([0.15, 0.5]))
    np.testing.assert_allclose(batched[1], run(0.5, 0.5), rtol=1e-10)
    short = dynamics.transport.barycenter_fixed_support(
        sup, measures, w, lam=0.3, tau=0.01, max_iterations=3
    )
    assert not bool(short.converged) and int(short.n_iters) == 3
    # the potentials returned are those of the weights returned, even when stopped by the cap:
    # mu propto exp(-sum_k w_k u_k / tau), u_k = -lam log sum_y q_k(y) exp((v_k(y) - c) / lam)
    u = [
        -0.3
        * jax.scipy.special.logsumexp(
            jnp.log(nu.weights)[None, :] + (v[None, :] - 0.5 * (sup - nu.positions.T) ** 2) / 0.3,
            axis=1,
        )
        for nu, v in zip(measures, short.potentials, strict=True)
    ]
    log_mu = -(w[0] * u[0] + w[1] * u[1]) / 0.01
    np.testing.assert_allclose(short.histogram, jax.nn.softmax(log_mu), rtol=1e-10)
    with pytest.raises(ValueError, match="weights: expected nonnegative finite weights summing"):
        dynamics.transport.barycenter_fixed_support(
            sup, measures, jnp.array([0.5, 0.6]), lam=0.1, tau=0.1
        )
    with pytest.raises(ValueError, match="tau"):
        dynamics.transport.barycenter_fixed_support(sup, measures, w, lam=0.1, tau=0.0)
    with pytest.raises(ValueError, match="dimension 1"):
        dynamics.transport.barycenter_fixed_support(
            sup, [Particles(jnp.ones(2) / 2, jnp.ones((2, 3)))], jnp.ones(1), lam=0.1, tau=0.1
        )


def test_targets_with_empty_points():
    # a target with zero mass on part of the support: same barycenter as with those points
    # removed from its support
    x = np.linspace(-3, 3, 61)
    a = np.exp(-((x + 0.5) ** 2))
    b = np.exp(-((x - 0.5) ** 2)) * (np.abs(x - 0.5) < 1.5)
    a, b = a / a.sum(), b / b.sum()
    sup = jnp.asarray(x[:, None])
    full = [Particles(jnp.asarray(a), sup), Particles(jnp.asarray(b), sup)]
    keep = b > 0
    trimmed = [full[0], Particles(jnp.asarray(b[keep]), sup[keep])]
    w = jnp.array([0.4, 0.6])
    r1 = dynamics.transport.barycenter_fixed_support(sup, full, w, lam=0.2, tau=0.1)
    r2 = dynamics.transport.barycenter_fixed_support(sup, trimmed, w, lam=0.2, tau=0.1)
    assert bool(r1.converged) and bool(r2.converged)
    np.testing.assert_allclose(r1.histogram, r2.histogram, atol=1e-9)


def _blobs(shape, centers, key=0):
    axes = [np.sort(np.random.default_rng(key + a).uniform(0, 1, n)) for a, n in enumerate(shape)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    h = np.stack([np.exp(-np.sum((mesh - c) ** 2, -1) / 0.05) for c in centers])
    return axes, h / h.sum(axis=tuple(range(1, h.ndim)), keepdims=True)


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_separable_grid_kernel_equals_dense():
    # K = K_0 (x) K_1 on a (non-uniform) tensor grid: the separable path, in kernel and log mode,
    # equals the dense point-cloud path with a shared kernel and with one kernel per target
    axes, h = _blobs((9, 7), [(0.2, 0.3), (0.7, 0.6), (0.5, 0.9)])
    grid = dynamics.transport.TensorGrid(tuple(jnp.asarray(a) for a in axes))
    pts = grid.points
    w = jnp.array([0.5, 0.3, 0.2])
    kw = dict(lam=0.02, tau=0.01, threshold=1e-12)
    runs = {
        "grid kernel": dynamics.transport.barycenter_fixed_support(grid, h, w, mode="kernel", **kw),
        "grid log": dynamics.transport.barycenter_fixed_support(grid, h, w, mode="log", **kw),
        "grid overrelaxed": dynamics.transport.barycenter_fixed_support(
            grid, h, w, mode="kernel", overrelaxation=1.5, **kw
        ),
        "cloud kernel": dynamics.transport.barycenter_fixed_support(
            pts, h.reshape(3, -1), w, mode="kernel", **kw
        ),
        "particles": dynamics.transport.barycenter_fixed_support(
            pts, [Particles(jnp.asarray(hk.ravel()), pts) for hk in h], w, **kw
        ),
    }
    ref = np.asarray(runs["particles"].histogram)
    for name, r in runs.items():
        assert bool(r.converged), name
        np.testing.assert_allclose(np.asarray(r.histogram).ravel(), ref, atol=1e-11, err_msg=name)
    # over-relaxation: same fixed point, fewer iterations
    assert int(runs["grid overrelaxed"].n_iters) < int(runs["grid kernel"].n_iters)
    assert runs["grid kernel"].histogram.shape == (9, 7)
    assert len(runs["grid log"].potentials) == 3
    assert runs["grid log"].potentials[0].shape == (9, 7)
    np.testing.assert_allclose(
        runs["grid log"].potentials[0].ravel(), runs["particles"].potentials[0], atol=1e-8
    )


def test_kernel_underflow_is_reported_and_auto_falls_back_to_log():
    # lam = 0.1 on [0, 20]: exp(-c / lam) underflows to 0 far off the diagonal (c up to 200),
    # so the scalings of kernel mode overflow; kernel mode must say so (and stop at once), auto
    # must redo it in log mode
    x = np.linspace(0, 20, 201)
    h = np.stack([np.exp(-((x - c) ** 2) / 2) for c in (2.0, 18.0)])
    h = h / h.sum(1, keepdims=True)
    w = jnp.array([0.5, 0.5])
    kw = dict(lam=0.1, tau=0.1, max_iterations=400)
    grid = dynamics.transport.TensorGrid((jnp.asarray(x),))
    kernel = dynamics.transport.barycenter_fixed_support(grid, h, w, mode="kernel", **kw)
    log = dynamics.transport.barycenter_fixed_support(grid, h, w, mode="log", **kw)
    auto = dynamics.transport.barycenter_fixed_support(grid, h, w, mode="auto", **kw)
    assert not bool(kernel.converged) and int(kernel.n_iters) < 400
    assert np.isnan(kernel.errors[int(kernel.n_iters) - 1])
    assert bool(log.converged)
    np.testing.assert_array_equal(np.asarray(auto.histogram), np.asarray(log.histogram))
    # symmetric targets and weights: the barycenter is symmetric about 10
    np.testing.assert_allclose(np.asarray(log.histogram) @ x, 10.0, atol=1e-6)


def test_vmap_over_batches_of_histograms():
    axes, h = _blobs((6, 5), [(0.3, 0.3), (0.7, 0.7)])
    _, h2 = _blobs((6, 5), [(0.2, 0.8), (0.8, 0.2)])
    grid = dynamics.transport.TensorGrid(tuple(jnp.asarray(a) for a in axes))
    w = jnp.array([0.5, 0.5])

    def solve(hist):
        return dynamics.transport.barycenter_fixed_support(
            grid, hist, w, lam=0.02, tau=0.01
        ).histogram

    batched = jax.jit(jax.vmap(solve))(jnp.stack([h, h2]))
    np.testing.assert_allclose(batched[0], solve(h), atol=1e-12)
    np.testing.assert_allclose(batched[1], solve(h2), atol=1e-12)
