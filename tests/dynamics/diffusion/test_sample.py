"""Sampling: the probability-flow ODE of Gaussian data is an exact affine map, one-point data end
at the closed-form point, the reverse SDE with the empirical score memorizes (and smoothing
undoes it, monotonically in the bandwidth), the DSM excess-risk identity, failures as data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics import diffusion as dfn

OU = dfn.OrnsteinUhlenbeck(T=5.0)


def sqrtm(a):
    w, v = jnp.linalg.eigh(a)
    return (v * jnp.sqrt(w)[None]) @ v.T


def test_probability_flow_of_gaussian_data_is_the_exact_affine_map():
    """For p_0 = N(m, C), z = y - mu_t m solves dz/dt = (1/2) (dSigma_t/dt) Sigma_t^{-1} z with
    Sigma_t = mu_t^2 C + sigma_t^2 I (all Sigma_t commute), so
    y(t_min) = mu_min m + Sigma_min^{1/2} Sigma_max^{-1/2} (y(t_max) - mu_max m)."""
    m, c = jnp.array([1.0, -0.5]), jnp.array([[0.6, 0.25], [0.25, 0.3]])
    score = dfn.gaussian_score(m, c, OU)
    t_min, t_max = 0.01, OU.T
    start = jax.random.normal(jax.random.key(0), (16, 2))
    out, stats = dfn.sample(
        score, OU, key=jax.random.key(1), n=16, event_shape=(2,), t_min=t_min, method="ode",
        start=start, rtol=1e-10, atol=1e-10,
    )  # fmt: skip
    assert int(stats.status) == 0

    def cov(t):
        return OU.mean_scale(t) ** 2 * c + OU.std(t) ** 2 * jnp.eye(2)

    a = sqrtm(cov(t_min)) @ jnp.linalg.inv(sqrtm(cov(t_max)))
    want = OU.mean_scale(t_min) * m[None] + (start - OU.mean_scale(t_max) * m[None]) @ a.T
    np.testing.assert_allclose(out, want, atol=1e-7)

    # One training point x0: the empirical score is the Gaussian one with C = 0, every path ends
    # at mu_min x0 + (sigma_min / sigma_max) (y(t_max) - mu_max x0).
    x0 = jnp.array([[0.7, -1.2]])
    out, _ = dfn.sample(
        dfn.empirical_score(x0, OU), OU, key=jax.random.key(1), n=16, event_shape=(2,),
        t_min=t_min, method="ode", start=start, rtol=1e-10, atol=1e-10,
    )  # fmt: skip
    ratio = OU.std(t_min) / OU.std(t_max)
    want = OU.mean_scale(t_min) * x0 + ratio * (start - OU.mean_scale(t_max) * x0)
    np.testing.assert_allclose(out, want, atol=1e-7)


DATA = jnp.array(
    [[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
) * jnp.array([[6.0, 3.0]])  # 12 points on an ellipse, spacing >= 1.55


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_reverse_sde_with_the_empirical_score_memorizes_and_smoothing_undoes_it():
    """With s*, the SDE's law at t_min is p_{t_min}^N = mixture of N(mu x_i, sigma^2 I): samples
    copy the training points (1/3 rule) at mean distance sigma E|Z| = sigma sqrt(pi/2) (d = 2) from
    mu x_i. Kernel-smoothed scores of growing bandwidth (one vmap) copy less and less."""
    proc = dfn.OrnsteinUhlenbeck(T=3.0)
    t_min, n = 0.01, 200  # sigma_min = 0.14; steps: du = 0.002 = sigma_min^2 / 10 (EM stable)
    kw = dict(key=jax.random.key(2), n=n, event_shape=(2,), t_min=t_min, steps=1500)
    out, stats = jax.jit(lambda: dfn.sample(dfn.empirical_score(DATA, proc), proc, **kw))()
    assert int(stats.status) == 0
    mu, sig = proc.mean_scale(t_min), proc.std(t_min)
    frac = dfn.memorized_fraction(out, mu * DATA)
    dist, _ = dfn.nearest_neighbours(out, mu * DATA)
    assert float(frac) > 0.97
    np.testing.assert_allclose(float(jnp.mean(dist[:, 0])), sig * np.sqrt(np.pi / 2), rtol=0.12)

    def smoothed(h):
        score = dfn.kernel_smoothed_score(DATA, proc, h, order=4)
        out, _ = dfn.sample(score, proc, **kw)
        return dfn.memorized_fraction(out, mu * DATA)

    fracs = np.asarray(jax.jit(jax.vmap(smoothed))(jnp.array([0.1, 1.0, 2.0])))
    assert np.all(np.diff(fracs) < 0) and fracs[0] > 0.6 and fracs[-1] < 0.15, fracs


def test_dsm_excess_risk_identity():
    """R(s) - R(s*) (two dsm_loss Monte Carlo estimates on common noise) equals
    (1/n) sum_i E |s - s*|^2 (excess_risk), within standard errors, for s the Gaussian-fit score."""
    data = DATA
    t = 0.3
    fit = dfn.gaussian_score(jnp.mean(data, 0), jnp.cov(data.T), OU)
    star = dfn.empirical_score(data, OU)
    loss_fit = dfn.dsm_loss(lambda p, y: fit(t, y), data, OU, t=t)
    loss_star = dfn.dsm_loss(lambda p, y: star(t, y), data, OU, t=t)
    keys = jax.random.split(jax.random.key(3), 2000)
    diff = jax.vmap(lambda k: loss_fit(None, k) - loss_star(None, k))(keys)
    est, se = dfn.excess_risk(fit, data, OU, t, key=jax.random.key(4), n_noise=500)
    se_diff = float(jnp.std(diff) / np.sqrt(diff.size))
    assert abs(float(jnp.mean(diff)) - float(est)) < 4 * np.hypot(se_diff, float(se))
    assert float(est) > 10 * float(se)  # a non-trivial excess risk


def test_mmd_is_zero_in_expectation_for_equal_laws_and_matches_the_gaussian_closed_form():
    """Unbiased MMD^2 for N(0, I) vs N(delta, I) in d = 1 with kernel width h:
    2 (h^2/(h^2+2))^{1/2} (1 - exp(-delta^2 / (2 (h^2 + 2))))."""
    h, delta = 1.0, 0.8
    keys = jax.random.split(jax.random.key(5), 200)

    def one(k):
        a, b = jax.random.split(k)
        x, y = jax.random.normal(a, (100, 1)), jax.random.normal(b, (100, 1))
        return dfn.mmd(x, y, bandwidth=h), dfn.mmd(x, y + delta, bandwidth=h)

    same, shifted = jax.vmap(one)(keys)
    want = 2 * np.sqrt(h**2 / (h**2 + 2)) * (1 - np.exp(-(delta**2) / (2 * (h**2 + 2))))
    assert abs(float(jnp.mean(same))) < 3 * float(jnp.std(same)) / np.sqrt(200)
    assert abs(float(jnp.mean(shifted)) - want) < 3 * float(jnp.std(shifted)) / np.sqrt(200)


def test_blow_up_is_reported_and_bad_input():
    out, stats = dfn.sample(
        lambda t, y: 1e300 * y, OU, key=jax.random.key(0), n=4, event_shape=(2,), t_min=0.1,
        steps=20,
    )  # fmt: skip
    assert dynamics.STATUS_NAMES[int(stats.status)] == "nonfinite"
    score = dfn.empirical_score(DATA, OU)
    kw = dict(key=jax.random.key(0), n=4, event_shape=(2,))
    with pytest.raises(ValueError, match="^steps: the reverse SDE takes fixed steps"):
        dfn.sample(score, OU, t_min=0.1, **kw)
    with pytest.raises(ValueError, match="^method"):
        dfn.sample(score, OU, t_min=0.1, method="ddim", steps=3, **kw)
    with pytest.raises(ValueError, match="^dt: pass either"):
        dfn.sample(score, OU, t_min=0.1, steps=3, dt=0.1, **kw)
    # dt = span / steps is the same run as steps
    a, _ = dfn.sample(score, OU, t_min=0.1, steps=7, **kw)
    b, _ = dfn.sample(score, OU, t_min=0.1, dt=(OU.T - 0.1) / 7, **kw)
    np.testing.assert_allclose(a, b, atol=1e-10)
    with pytest.raises(ValueError, match=r"^t_min: expected times in \(0, T\]"):
        dfn.sample(score, OU, t_min=0.0, steps=3, **kw)
    with pytest.raises(ValueError, match="^t_min: expected t_min < t_max"):
        dfn.sample(score, OU, t_min=1.0, t_max=0.5, steps=3, **kw)
    with pytest.raises(ValueError, match="^t: pass exactly one"):
        dfn.dsm_loss(lambda p, y: y, DATA, OU)
    with pytest.raises(ValueError, match="^weighting"):
        dfn.dsm_loss(lambda p, y: y, DATA, OU, t=0.1, weighting="snr")
    with pytest.raises(ValueError, match="^y: expected points"):
        dfn.mmd(DATA, DATA[:, :1], bandwidth=1.0)


def test_nearest_neighbours_against_brute_force():
    """Streamed top-2 distances (any chunk size) = the sorted full distance matrix."""
    x = jax.random.normal(jax.random.key(6), (23, 3))
    y = jax.random.normal(jax.random.key(7), (9, 3))
    full = np.sort(np.linalg.norm(np.asarray(y)[:, None] - np.asarray(x)[None], axis=-1), 1)
    arg = np.argmin(np.linalg.norm(np.asarray(y)[:, None] - np.asarray(x)[None], axis=-1), 1)
    for chunk in (1, 5, 23):
        dist, idx = dfn.nearest_neighbours(y, x, chunk_size=chunk)
        np.testing.assert_allclose(dist, full[:, :2], atol=1e-12)
        np.testing.assert_array_equal(idx, arg)
    ratio = full[:, 0] / full[:, 1]
    np.testing.assert_allclose(dfn.memorized_fraction(y, x), np.mean(ratio < 1 / 3))
