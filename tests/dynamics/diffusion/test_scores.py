"""Scores: the empirical optimal score against autodiff of the mixture log density, its Jacobian
identity, the 1/n convergence to the Gaussian score, the small-time nearest-neighbour limit,
kernel smoothing (affine scores unchanged, = grad of the smoothed log density), the processes'
SDE/transition consistency and the VE conversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax.dynamics import diffusion as dfn

OU = dfn.OrnsteinUhlenbeck(T=5.0)
PROCS = [OU, dfn.VariancePreserving(0.1, 20.0, 1.0), dfn.VarianceExploding(T=10.0)]
DATA = jax.random.normal(jax.random.key(0), (37, 3))


def mixture_log_density(data, process, t, y):
    """log (1/n) sum_i N(y; mu x_i, sigma^2 I), written out with full distances."""
    mu, sig = process.mean_scale(t), process.std(t)
    d2 = jnp.sum((y[None] - mu * data) ** 2, -1)
    d = data.shape[1]
    return (
        jax.scipy.special.logsumexp(-d2 / (2 * sig**2))
        - jnp.log(data.shape[0])
        - 0.5 * d * jnp.log(2 * jnp.pi * sig**2)
    )


@pytest.mark.parametrize("process", PROCS, ids=lambda p: type(p).__name__)
def test_empirical_score_is_the_gradient_of_the_log_density(process):
    y = 1.5 * jax.random.normal(jax.random.key(1), (6, 3))
    for t in (0.02 * process.T, process.T):
        grad = jax.vmap(jax.grad(mixture_log_density, 3), (None, None, None, 0))(
            DATA, process, t, y
        )
        for chunk in (8, 37):  # several chunks with padding; one chunk
            score = dfn.empirical_score(DATA, process, chunk_size=chunk)
            scale = 1 + jnp.max(jnp.abs(grad))
            np.testing.assert_allclose(score(t, y) / scale, grad / scale, atol=1e-10)
        logp = jax.vmap(mixture_log_density, (None, None, None, 0))(DATA, process, t, y)
        np.testing.assert_allclose(score.log_density(t, y), logp, rtol=1e-12, atol=1e-12)


def test_jacobian_identity_and_denoiser():
    """grad s* = (-I + mu^2 Cov_alpha(x) / sigma^2) / sigma^2; Tweedie: s* = (mu D - y)/sigma^2."""
    score = dfn.empirical_score(DATA, OU, chunk_size=8)
    t = 0.4
    mu, sig = OU.mean_scale(t), OU.std(t)
    y = jnp.array([0.3, -0.2, 0.5])
    jac = jax.jacfwd(lambda y: score(t, y))(y)
    alpha = jax.nn.softmax(-jnp.sum((y[None] - mu * DATA) ** 2, -1) / (2 * sig**2))
    mean = alpha @ DATA
    cov = (DATA - mean[None]).T @ (alpha[:, None] * (DATA - mean[None]))
    np.testing.assert_allclose(jac, (-jnp.eye(3) + mu**2 * cov / sig**2) / sig**2, atol=1e-10)
    np.testing.assert_allclose(score.denoiser(t, y), mean, atol=1e-12)
    assert score(t, y).shape == (3,) and score(t, jnp.zeros((2, 4, 3))).shape == (2, 4, 3)


def test_empirical_score_converges_to_the_gaussian_score_like_one_over_n():
    """Data N(m, C): s_n -> -(mu^2 C + sigma^2 I)^{-1}(y - mu m); the score is a ratio of sample
    means, so its mean squared error is c/n + O(1/n^2): the log-log slope is -1."""
    m, c = jnp.array([0.5, -0.3]), jnp.array([[1.0, 0.3], [0.3, 0.5]])
    t = 0.7
    exact = dfn.gaussian_score(m, c, OU)
    chol = jnp.linalg.cholesky(c)
    mu, sig = OU.mean_scale(t), OU.std(t)
    queries = (
        mu * m[None]
        + jax.random.normal(jax.random.key(2), (200, 2))
        @ jnp.linalg.cholesky(mu**2 * c + sig**2 * jnp.eye(2)).T
    )
    target = exact(t, queries)
    sizes = np.array([100, 200, 400, 800])
    seeds = jax.random.split(jax.random.key(3), 40)

    def mse(key, n):
        data = m[None] + jax.random.normal(key, (n, 2)) @ chol.T
        return jnp.mean(jnp.sum((dfn.empirical_score(data, OU)(t, queries) - target) ** 2, -1))

    errors = [float(jnp.mean(jax.vmap(lambda k, n=n: mse(k, n))(seeds))) for n in sizes]
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert abs(slope + 1) < 0.12, (slope, errors)


def test_small_time_nearest_neighbour_limit():
    """With s = sigma and y within mu Delta/4 of mu x_j:
    alpha_i / alpha_j <= exp(-mu^2 |x_i - x_j|^2 / (4 s^2)), so
    |s* - s_nn| <= (mu / s^2) sum_{i != j} |x_i - x_j| exp(-mu^2 |x_i - x_j|^2 / (4 s^2)),
    with s_nn = (mu x_j - y) / s^2 the nearest point's score."""
    data = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.2], [1.1, 1.1]])
    score = dfn.empirical_score(data, OU)
    delta = 1.0
    for t in (0.02, 0.05, 0.1):
        mu, sig = OU.mean_scale(t), OU.std(t)
        u = jax.random.uniform(jax.random.key(4), (50, 2), minval=-1, maxval=1)
        offsets = mu * delta / 4 * u / jnp.maximum(1.0, jnp.linalg.norm(u, axis=1))[:, None]
        j = jnp.arange(50) % 4
        y = mu * data[j] + offsets
        gap = jnp.abs(score(t, y) - (mu * data[j] - y) / sig**2).max(1)
        dist = jnp.linalg.norm(data[None] - data[j][:, None], axis=-1)  # [50, 4]
        bound = mu / sig**2 * jnp.sum(dist * jnp.exp(-(mu**2) * dist**2 / (4 * sig**2)), 1)
        assert bool(jnp.all(gap <= bound)), t
        assert float(jnp.max(gap)) > 0  # the bound is tested on a non-trivial gap


def test_kernel_smoothing_keeps_affine_scores_and_is_the_smoothed_log_density_gradient():
    m, c = jnp.array([0.5, -0.3]), jnp.array([[1.0, 0.3], [0.3, 0.5]])
    exact = dfn.gaussian_score(m, c, OU)
    y = jax.random.normal(jax.random.key(5), (7, 2))
    smooth = dfn.smooth_score(exact, 0.4, event_shape=(2,), order=3)
    np.testing.assert_allclose(smooth(0.3, y), exact(0.3, y), atol=1e-12)
    data = DATA[:, :2]
    h = 0.25
    ks = dfn.kernel_smoothed_score(data, OU, h, order=6)
    base = dfn.empirical_score(data, OU)
    z, w = np.polynomial.hermite_e.hermegauss(6)
    zz = jnp.stack(jnp.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    ww = jnp.asarray(np.outer(w, w).ravel() / w.sum() ** 2)

    def smoothed_log_density(y):  # K_h * log p (same quadrature rule)
        return ww @ base.log_density(0.2, y[None] + h * zz)

    grad = jax.vmap(jax.grad(smoothed_log_density))(y)
    np.testing.assert_allclose(ks(0.2, y), grad, atol=1e-10)
    mc = dfn.kernel_smoothed_score(
        data, OU, h, method="monte_carlo", n_samples=20000, key=jax.random.key(6)
    )
    assert float(jnp.max(jnp.abs(mc(0.2, y) - ks(0.2, y)))) < 0.1 * float(
        jnp.max(jnp.abs(ks(0.2, y)))
    )


def test_gaussian_mixture_score_against_autodiff():
    w = jnp.array([0.3, 0.7])
    means = jnp.array([[1.0, 0.0], [-0.5, 0.5]])
    covs = jnp.array([[[0.5, 0.1], [0.1, 0.3]], [[0.2, 0.0], [0.0, 0.4]]])
    score = dfn.gaussian_mixture_score(w, means, covs, OU)
    t = 0.3
    mu, sig = OU.mean_scale(t), OU.std(t)

    def logp(y):
        comps = [
            jnp.log(w[k])
            + jax.scipy.stats.multivariate_normal.logpdf(
                y, mu * means[k], mu**2 * covs[k] + sig**2 * jnp.eye(2)
            )
            for k in range(2)
        ]
        return jax.scipy.special.logsumexp(jnp.stack(comps))

    y = jax.random.normal(jax.random.key(7), (5, 2))
    np.testing.assert_allclose(score(t, y), jax.vmap(jax.grad(logp))(y), atol=1e-12)
    one = dfn.gaussian_mixture_score(jnp.ones(1), means[:1], covs[:1], OU)
    np.testing.assert_allclose(
        one(t, y), dfn.gaussian_score(means[0], covs[0], OU)(t, y), atol=1e-12
    )


@pytest.mark.parametrize("process", PROCS, ids=lambda p: type(p).__name__)
def test_process_sde_matches_its_transition(process):
    """The drift -h(t) x and diffusion g(t) generate mu_t, sigma_t: d mu/dt = -h mu and
    d sigma^2/dt = -2 h sigma^2 + g^2, with mu_0 = 1, sigma_0 = 0."""
    ts = jnp.linspace(0.05, 1.0, 7) * process.T
    h = -jax.vmap(lambda t: process.drift(t, jnp.array(1.0)))(ts)
    g = jax.vmap(process.diffusion)(ts)
    dmu = jax.vmap(jax.grad(process.mean_scale))(ts)
    dvar = jax.vmap(jax.grad(lambda t: process.std(t) ** 2))(ts)
    mu, var = process.mean_scale(ts), process.std(ts) ** 2
    np.testing.assert_allclose(dmu, -h * mu, rtol=1e-12)
    np.testing.assert_allclose(dvar, -2 * h * var + g**2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(process.mean_scale(0.0), 1.0)
    np.testing.assert_allclose(process.std(0.0), 0.0)


def test_variance_preserving_is_a_rescaled_time_changed_variance_exploding_process():
    """s_t(y) = s^VE_tau(y / mu_t) / mu_t with tau = sigma_t^2 / mu_t^2."""
    vp = dfn.VariancePreserving(0.1, 20.0, 1.0)
    y = jax.random.normal(jax.random.key(8), (5, 3))
    for t in (0.1, 0.5):
        mu, sig = vp.mean_scale(t), vp.std(t)
        tau = float(sig**2 / mu**2)
        ve = dfn.VarianceExploding(T=2 * tau)
        s_vp = dfn.empirical_score(DATA, vp)(t, y)
        s_ve = dfn.empirical_score(DATA, ve)(tau, y / mu) / mu
        np.testing.assert_allclose(s_vp, s_ve, rtol=1e-10, atol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="^data: expected"):
        dfn.empirical_score(jnp.array([[jnp.nan, 0.0]]), OU)
    with pytest.raises(ValueError, match="^process: expected one of"):
        dfn.empirical_score(DATA, "ou")
    score = dfn.empirical_score(DATA, OU)
    with pytest.raises(ValueError, match=r"^t: expected times in \(0, T\]"):
        score(0.0, DATA[:2])
    with pytest.raises(ValueError, match=r"^t: expected times in \(0, T\]"):
        score(6.0, DATA[:2])
    with pytest.raises(ValueError, match="^y: expected queries of shape"):
        score(0.5, DATA[:, :2])
    with pytest.raises(ValueError, match="^bandwidth"):
        dfn.kernel_smoothed_score(DATA, OU, 0.0)
    with pytest.raises(ValueError, match="^method"):
        dfn.kernel_smoothed_score(DATA, OU, 0.1, method="quadrature")
    with pytest.raises(ValueError, match="^key"):
        dfn.kernel_smoothed_score(DATA, OU, 0.1, method="monte_carlo")
    with pytest.raises(ValueError, match="^order: a tensor Gauss-Hermite rule"):
        dfn.kernel_smoothed_score(jnp.zeros((3, 10)), OU, 0.1, order=4)
    with pytest.raises(ValueError, match="^process.T"):
        dfn.empirical_score(DATA, dfn.OrnsteinUhlenbeck(T=-1.0))


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_weights_mask_subsets_so_dataset_sizes_are_one_vmap():
    """A 0/1 mask of the first k points is the empirical score of data[:k] (score and log density);
    general weights give the weighted mixture; sizes k = 5, 20, 37 in one vmap."""
    y = jax.random.normal(jax.random.key(9), (4, 3))
    sizes = jnp.array([5, 20, 37])

    def masked(k):
        score = dfn.empirical_score(DATA, OU, weights=(jnp.arange(37) < k) * 1.0, chunk_size=8)
        return score(0.3, y), score.log_density(0.3, y)

    scores, logps = jax.vmap(masked)(sizes)
    for i, k in enumerate(np.asarray(sizes)):
        sub = dfn.empirical_score(DATA[:k], OU)
        np.testing.assert_allclose(scores[i], sub(0.3, y), atol=1e-10)
        np.testing.assert_allclose(logps[i], sub.log_density(0.3, y), atol=1e-10)
    w = jnp.arange(1.0, 38.0)
    weighted = dfn.empirical_score(DATA, OU, weights=w)

    def logp(y):
        mu, sig = OU.mean_scale(0.3), OU.std(0.3)
        d2 = jnp.sum((y[None] - mu * DATA) ** 2, -1)
        return jax.scipy.special.logsumexp(-d2 / (2 * sig**2), b=w / w.sum())

    np.testing.assert_allclose(weighted(0.3, y), jax.vmap(jax.grad(logp))(y), atol=1e-10)
    with pytest.raises(ValueError, match="^weights: expected non-negative"):
        dfn.empirical_score(DATA, OU, weights=-w)
