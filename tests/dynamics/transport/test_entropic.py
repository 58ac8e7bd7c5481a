"""Transport through ott-jax: Gaussian closed forms, divergence, projection, barycenter formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics.measures import Particles


def gaussian_on_grid(x, mean, var):
    w = np.exp(-((x - mean) ** 2) / (2 * var))
    return Particles(jnp.asarray(w / w.sum()), jnp.asarray(x[:, None]))


@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_entropic_ot_matches_gaussian_closed_form(lam):
    # 1-D Gaussians discretized on a fine grid: KL(gamma | mu x nu) is a ratio of densities, so
    # the discrete value converges to the continuous one (grid step 0.02, tails beyond 8 sd).
    x = np.linspace(-8, 9, 851)
    mu, nu = gaussian_on_grid(x, 0.0, 1.0), gaussian_on_grid(x, 1.0, 0.49)
    out = dynamics.transport.entropic_ot(mu, nu, lam=lam, threshold=1e-9)
    closed = dynamics.transport.gaussian_entropic_ot(0.0, 1.0, 1.0, 0.49, lam=lam)
    assert bool(out.converged)
    np.testing.assert_allclose(float(out.cost), float(closed), rtol=2e-4)
    # the plan's marginals are the measures
    np.testing.assert_allclose(out.plan.sum(1), mu.weights, atol=1e-8)


def test_gaussian_entropic_ot_limits():
    # lam -> 0: W2^2 / 2 between N(0, 1) and N(1, 0.49) = (1 + (1 - 0.7)^2) / 2
    np.testing.assert_allclose(
        dynamics.transport.gaussian_entropic_ot(0.0, 1.0, 1.0, 0.49, lam=1e-7),
        0.5 * (1 + 0.3**2),
        atol=1e-5,
    )
    # matrix form equals a product of independent 1-D problems
    two = dynamics.transport.gaussian_entropic_ot(
        jnp.zeros(2),
        jnp.diag(jnp.array([1.0, 2.0])),
        jnp.ones(2),
        jnp.diag(jnp.array([0.5, 3.0])),
        lam=0.3,
    )
    one = dynamics.transport.gaussian_entropic_ot(
        0.0, 1.0, 1.0, 0.5, lam=0.3
    ) + dynamics.transport.gaussian_entropic_ot(0.0, 2.0, 1.0, 3.0, lam=0.3)
    np.testing.assert_allclose(two, one, rtol=1e-12)


@pytest.mark.slow  # 28 s; sinkhorn_divergence keeps its contract case (jit, vmap, float32)
def test_sinkhorn_divergence_zero_on_diagonal_and_gradient():
    k1, k2 = jax.random.split(jax.random.key(0))
    mu = Particles(jnp.full(12, 1 / 12), jax.random.normal(k1, (12, 2)))
    nu = Particles(jnp.full(10, 1 / 10), jax.random.normal(k2, (10, 2)) + 1.0)
    opts = dict(lam=0.5, threshold=1e-10)
    # not jitted: ott-jax's backward pass relies on implicit rank promotion, and under jit it
    # would be traced outside flowax's "allow" context (conftest sets "raise")
    div = lambda a, b: dynamics.transport.sinkhorn_divergence(a, b, **opts)[0]  # noqa: E731
    assert abs(float(div(mu, mu))) < 1e-10
    value, out = dynamics.transport.sinkhorn_divergence(mu, nu, **opts)
    assert all(bool(c) for c in out.converged)
    dynamics.raise_if_failed((value, out))
    # ott's sinkdiv == the three-term definition through flowax's entropic_ot (cost |x-y|^2/2)
    t = lambda a, b: dynamics.transport.entropic_ot(a, b, **opts).cost  # noqa: E731
    np.testing.assert_allclose(value, t(mu, nu) - 0.5 * (t(mu, mu) + t(nu, nu)), rtol=1e-8)
    s = float(value)
    assert s > 0.1
    grad = jax.grad(lambda x: div(Particles(mu.weights, x), nu))
    g = np.asarray(grad(mu.positions))
    eps = 1e-5
    value_at = jax.jit(lambda x: div(Particles(mu.weights, x), nu))  # forward only: jit is fine
    for i, j in [(0, 0), (3, 1), (7, 0)]:
        e = jnp.zeros_like(mu.positions).at[i, j].set(eps)
        fd = (value_at(mu.positions + e) - value_at(mu.positions - e)) / (2 * eps)
        np.testing.assert_allclose(g[i, j], float(fd), rtol=1e-5, atol=1e-9)


def test_barycentric_projection_of_gaussians_is_affine():
    # Between N(0, 1) and N(1, 0.49) the entropic map is affine, T(x) = 1 + c x, with
    # c = rho * 0.7 and rho the optimal correlation: lam rho = sigma s (1 - rho^2) (notes).
    lam = 0.3
    x = np.linspace(-8, 9, 851)
    mu, nu = gaussian_on_grid(x, 0.0, 1.0), gaussian_on_grid(x, 1.0, 0.49)
    image, out = dynamics.transport.barycentric_projection(mu, nu, lam=lam, threshold=1e-9)
    assert bool(out.converged)
    mapped = np.asarray(image)[:, 0]
    sig, s = 1.0, 0.7
    rho = (-lam + np.sqrt(lam**2 + 4 * (sig * s) ** 2)) / (2 * sig * s)
    inside = np.abs(x) < 3
    np.testing.assert_allclose(mapped[inside], 1.0 + rho * s / sig * x[inside], atol=2e-3)


def test_gaussian_barycenter_special_cases():
    a, lam = 1.3, 0.4
    m = jnp.array([[-1.0], [0.5], [2.0]])
    v = jnp.full(3, a)
    w = jnp.array([0.2, 0.5, 0.3])
    mean, var = dynamics.transport.gaussian_barycenter(m, v, w, lam=lam, tau=lam)
    np.testing.assert_allclose(mean, [0.2 * -1 + 0.25 + 0.6], rtol=1e-12)
    np.testing.assert_allclose(var, a + lam, rtol=1e-12)
    _, var = dynamics.transport.gaussian_barycenter(m, v, w, lam=lam, tau=lam / 2)
    np.testing.assert_allclose(var, (a + np.sqrt(a**2 + lam**2)) / 2, rtol=1e-12)
    tau = 0.13
    _, var = dynamics.transport.gaussian_barycenter(m, v, w, lam=lam, tau=tau)
    np.testing.assert_allclose(
        var, ((a + np.sqrt((a - lam) ** 2 + 4 * a * tau)) ** 2 - lam**2) / (4 * a), rtol=1e-12
    )
    # unequal variances: the root equation holds, and vmap over (lam, tau) works
    v2 = jnp.array([0.36, 1.0, 2.25])
    lams, taus = jnp.array([0.1, 0.2]), jnp.array([0.05, 0.3])
    _, xs = jax.vmap(lambda l, t: dynamics.transport.gaussian_barycenter(m, v2, w, lam=l, tau=t))(
        lams, taus
    )
    for l, t, xv in zip(lams, taus, xs, strict=True):
        lhs = 2 * xv + l - 2 * t
        np.testing.assert_allclose(lhs, jnp.sum(w * jnp.sqrt(l**2 + 4 * v2 * xv)), rtol=1e-12)


@pytest.mark.slow  # 28 s; vmap of barycenter_particles is also in the contract table
def test_barycenter_particles_small_under_vmap():
    # one step from a point cloud with tau = 0 and lr = 1 moves every particle exactly to
    # sum_k w_k T_k(x): the weighted entropic maps
    nus = [
        Particles(jnp.full(30, 1 / 30), jax.random.normal(jax.random.key(i), (30, 2)) + i)
        for i in range(2)
    ]
    w = jnp.array([0.25, 0.75])
    x0 = jax.random.normal(jax.random.key(9), (20, 2))
    one = dynamics.transport.barycenter_particles(
        nus,
        w,
        lam=0.5,
        tau=0.0,
        n_particles=20,
        key=jax.random.key(0),
        lr=1.0,
        steps=1,
        init=x0,
        threshold=1e-10,
    )
    mu0 = Particles(jnp.full(20, 1 / 20), x0)
    expected = sum(
        wk * dynamics.transport.barycentric_projection(mu0, nu, lam=0.5, threshold=1e-10)[0]
        for wk, nu in zip(w, nus, strict=True)
    )
    np.testing.assert_allclose(one.final.positions, expected, rtol=1e-8, atol=1e-10)

    def run(lam):
        return dynamics.transport.barycenter_particles(
            nus,
            w,
            lam=lam,
            tau=0.05,
            n_particles=20,
            key=jax.random.key(0),
            lr=0.5,
            steps=3,
            init=x0,
        ).values["variance"]

    out = jax.vmap(run)(jnp.array([0.2, 0.5]))
    assert out.shape == (2, 4, 2)
    for i, lam in enumerate([0.2, 0.5]):  # each lane is its own run (same key, same init)
        np.testing.assert_allclose(out[i], run(lam), rtol=1e-10)


def test_barycenter_particles_reports_an_unconverged_sinkhorn():
    nus = [
        Particles(jnp.full(30, 1 / 30), jax.random.normal(jax.random.key(k), (30, 2)) + k)
        for k in range(2)
    ]
    common = dict(lam=0.3, tau=0.01, n_particles=10, key=jax.random.key(0), lr=0.5, steps=3)
    bad = dynamics.transport.barycenter_particles(
        nus, jnp.array([0.5, 0.5]), max_iterations=2, threshold=1e-12, **common
    )
    # two Sinkhorn iterations cannot reach 1e-12: the run says so, as data and on request
    assert not bool(bad.stats.inner_ok) and int(bad.stats.status) == 4
    assert np.all(np.isfinite(np.asarray(bad.final.positions)))
    with pytest.raises(RuntimeError, match="inner_solver_not_converged"):
        dynamics.raise_if_failed(bad)
    good = dynamics.transport.barycenter_particles(nus, jnp.array([0.5, 0.5]), **common)
    assert bool(good.stats.inner_ok) and bool(good.stats.ok)


def test_jit_vmap_and_bad_input():
    mu = Particles(jnp.full(5, 0.2), jnp.linspace(0, 1, 10).reshape(5, 2))
    nus = Particles(jnp.full((3, 4), 0.25), jax.random.normal(jax.random.key(1), (3, 4, 2)))
    costs = jax.jit(jax.vmap(lambda nu: dynamics.transport.entropic_ot(mu, nu, lam=0.2).cost))(nus)
    one = dynamics.transport.entropic_ot(
        mu, Particles(nus.weights[1], nus.positions[1]), lam=0.2
    ).cost
    np.testing.assert_allclose(costs[1], one, rtol=1e-10)
    lams = jnp.array([0.1, 0.3])
    nu1 = Particles(nus.weights[0], nus.positions[0])
    by_lam = jax.vmap(lambda l: dynamics.transport.entropic_ot(mu, nu1, lam=l).cost)(lams)
    assert by_lam[0] < by_lam[1]  # T_lam grows with lam (the KL term is >= 0 and weighted more)
    short = dynamics.transport.entropic_ot(mu, nu1, lam=0.001, max_iterations=3, threshold=1e-12)
    assert not bool(short.converged) and not bool(short.ok)
    with pytest.raises(RuntimeError, match="did not converge"):
        dynamics.raise_if_failed(short)
    with pytest.raises(ValueError, match="^lam: expected"):
        dynamics.transport.entropic_ot(mu, nu1, lam=0.0)
    with pytest.raises(ValueError, match="nu.positions: expected points of shape"):
        dynamics.transport.entropic_ot(mu, Particles(nu1.weights, jnp.ones((4, 3))), lam=0.1)
    with pytest.raises(ValueError, match="equal masses"):
        dynamics.transport.entropic_ot(mu, Particles(2 * nu1.weights, nu1.positions), lam=0.1)
    with pytest.raises(ValueError, match="weights: expected nonnegative finite weights summing"):
        dynamics.transport.gaussian_barycenter(
            jnp.zeros((2, 1)), jnp.ones(2), jnp.array([0.5, 0.6]), lam=0.1, tau=0.1
        )


def _three_clouds(n):
    """Three 2-D standard Gaussian clouds of n points, their means and weights (0.3, 0.3, 0.4)."""
    means = jnp.array([[-1.0, 0.0], [1.0, 0.5], [0.0, 2.0]])
    measures = [
        Particles(
            jnp.full(n, 1 / n), m[None, :] + jax.random.normal(jax.random.key(10 + i), (n, 2))
        )
        for i, m in enumerate(means)
    ]
    return means, measures, jnp.array([0.3, 0.3, 0.4])


def _particle_barycenter(measures, w, lam, n, steps):
    """The tau = lam / 2 barycenter by noisy particles (lr 0.2), final state only."""
    return dynamics.transport.barycenter_particles(
        measures,
        w,
        lam=lam,
        tau=lam / 2,
        n_particles=n,
        key=jax.random.key(0),
        lr=0.2,
        steps=steps,
        n_save=2,
        threshold=1e-4,
    )


def _closed_form_variance(means, measures, w, lam, tau):
    """gaussian_barycenter's variance for the targets' empirical variances."""
    v_emp = jnp.array([jnp.mean(jnp.var(nu.positions, axis=0)) for nu in measures])
    return float(dynamics.transport.gaussian_barycenter(means, v_emp, w, lam=lam, tau=tau)[1])


@pytest.mark.slow  # 21 s; the particle barycenter is also checked under vmap and at threshold 0
def test_barycenter_particles_close_to_fixed_support_in_sinkhorn_divergence():
    # 2-D, three Gaussian clouds; lam = 0.2, tau = lam/2. The particle barycenter (600 particles)
    # and the fixed-support one on a 32 x 32 grid solve the same problem: their Sinkhorn
    # divergence must be at the level of 600 i.i.d. samples of the fixed-support solution (the
    # sampling floor, plus the scheme's O(lr) bias: allow 2x the mean floor), and smaller than to
    # the tau = lam and tau = 0.02 barycenters of the same targets.
    means, measures, w = _three_clouds(300)
    lam, n = 0.2, 600
    x = _particle_barycenter(measures, w, lam, n, 60).final.positions
    c = w @ means
    axes = tuple(jnp.linspace(c[i] - 4.5, c[i] + 4.5, 32) for i in range(2))
    pts = dynamics.transport.TensorGrid(axes).points
    solve = jax.vmap(
        lambda tau: (
            dynamics.transport.barycenter_fixed_support(
                pts, measures, w, lam=lam, tau=tau, mode="kernel"
            ).histogram
        )
    )
    fixed = jax.jit(solve)(jnp.array([lam / 2, lam, 0.02]))
    div = jax.jit(
        lambda x, wts: dynamics.transport.sinkhorn_divergence(
            Particles(jnp.full(n, 1 / n), x), Particles(wts, pts), lam=0.1
        )[0]
    )
    s = [float(div(x, wt)) for wt in fixed]
    h = axes[0][1] - axes[0][0]
    floor = []
    for i in range(2):  # i.i.d. samples of the fixed-support solution, jittered within a cell
        idx = jax.random.choice(jax.random.key(100 + i), pts.shape[0], (n,), p=fixed[0])
        jitter = (jax.random.uniform(jax.random.key(200 + i), (n, 2)) - 0.5) * h
        floor.append(float(div(pts[idx] + jitter, fixed[0])))
    assert s[0] < 2 * np.mean(floor), (s, floor)
    assert s[0] < min(s[1], s[2]), s
    # and its variance matches the closed form for Gaussians with the targets' empirical
    # variances: the sample variance of 2 x 600 coordinates has relative standard deviation
    # sqrt(2 / 1200) = 4.1%; allow 4 of them plus the scheme's ~1% O(lr) bias
    var = float(jnp.mean(jnp.var(x, axis=0)))
    closed = _closed_form_variance(means, measures, w, lam, lam / 2)
    assert abs(var / closed - 1) < 4 * np.sqrt(2 / (2 * n)) + 0.01, (var, closed)


@pytest.mark.slow  # ~50 s: 100 steps x 3 Sinkhorn solves of 2000 x 600 points
def test_barycenter_particles_matches_closed_form_variance():
    means, measures, w = _three_clouds(600)
    lam, n = 0.2, 2000
    traj = _particle_barycenter(measures, w, lam, n, 100)
    var = float(jnp.mean(traj.values["variance"][-1]))
    # closed form with the targets' empirical variances; the scheme's O(lr) bias is
    # 1/(1 - lr k/2) - 1 ~ 1% (contraction k = 1 - rho ~ 0.1); the sample variance of 2 x 2000
    # coordinates has relative std sqrt(2 / 4000) = 2.2%: allow 4 std + the bias.
    closed = {t: _closed_form_variance(means, measures, w, lam, t) for t in (1e-9, lam / 2, lam)}
    assert abs(var / closed[lam / 2] - 1) < 4 * np.sqrt(2 / (2 * n)) + 0.01, (var, closed)
    # and it tells the three regularizations apart (shrunk at tau = 0, blurred at tau = lam)
    assert abs(var - closed[lam / 2]) < min(abs(var - closed[1e-9]), abs(var - closed[lam]))
    mean = np.asarray(jnp.mean(traj.final.positions, axis=0))
    np.testing.assert_allclose(mean, np.asarray(w @ means), atol=0.1)
    with pytest.raises(ValueError, match="weights: expected nonnegative finite weights summing"):
        dynamics.transport.barycenter_particles(
            measures,
            jnp.array([0.5, 0.5, 0.5]),
            lam=lam,
            tau=0.1,
            n_particles=10,
            key=jax.random.key(0),
            lr=0.1,
            steps=1,
        )
