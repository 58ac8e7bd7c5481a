"""Pure-strategy games: descent-ascent flow and methods against their linear stability analysis
(Wang & Chizat 2023: partial curvature), bilinear games, optax's optimistic GD."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flowax import dynamics
from flowax.dynamics import games

S, SIGMA, ETA = 1.0, 2.0, 0.1


def quad(x, y):  # S = diag(-s, 0): the smallest curvature is 0, the rate is s/2
    return 0.5 * S * x**2 + SIGMA * x * y


def bilinear(x, y):
    return x @ jnp.array([[1.0, 0.5], [-0.3, 2.0]]) @ y


def fitted_rate(ts, norm, start=0.5):
    """Least-squares slope of -log |v| over the last (1 - start) of the run."""
    ts, norm = np.asarray(ts), np.asarray(norm)
    keep = ts >= start * ts[-1]
    return -np.polyfit(ts[keep], np.log(norm[keep]), 1)[0]


@pytest.fixture(scope="module")
def analysis():
    return games.local_analysis(quad, 0.0, 0.0, eta=ETA)


def test_partial_curvature_rate_is_half_the_curvature(analysis):
    # J = [[-s, -sigma], [sigma, 0]]: eigenvalues (-s +- sqrt(s^2 - 4 sigma^2)) / 2, real part -s/2
    np.testing.assert_allclose(analysis.jacobian, [[-S, -SIGMA], [SIGMA, 0.0]], atol=1e-15)
    np.testing.assert_allclose(np.linalg.eigvalsh(-analysis.symmetric), [0.0, S], atol=1e-15)
    np.testing.assert_allclose(analysis.flow_rate, S / 2, rtol=1e-12)
    np.testing.assert_allclose(analysis.averaged_rate, S / 2, rtol=1e-12)  # mean of (s, 0)
    traj = games.game_flow(quad, 1.0, 0.5, t1=30.0, n_save=121, rtol=1e-10, atol=1e-12)
    assert bool(traj.stats.ok)
    # the oscillation (omega = sqrt(sigma^2 - s^2/4)) averages out over ~7 periods
    np.testing.assert_allclose(
        fitted_rate(traj.ts, traj.values["field_norm"], 0.3), S / 2, rtol=0.02
    )


@pytest.mark.parametrize("method", games.METHODS)
def test_discrete_rates_match_their_linearization(analysis, method):
    traj = games.descent_ascent(quad, 1.0, 0.5, eta=ETA, steps=300, method=method, n_save=301)
    assert bool(traj.stats.ok)
    measured = fitted_rate(traj.ts, traj.values["field_norm"], 0.3)
    np.testing.assert_allclose(measured, analysis.rates[method], rtol=0.03)


def test_bilinear_game_flow_cycles_extragradient_converges_gda_diverges():
    la = games.local_analysis(bilinear, jnp.zeros(2), jnp.zeros(2), eta=0.05)
    np.testing.assert_allclose(la.symmetric, 0.0, atol=1e-15)
    np.testing.assert_allclose(la.flow_rate, 0.0, atol=1e-12)  # purely imaginary spectrum
    x0, y0 = jnp.array([1.0, -0.5]), jnp.array([0.3, 0.8])
    # the flow conserves |x|^2 + |y|^2 (the field is a rotation)
    energy = {"r2": lambda t, z: jnp.sum(z[0] ** 2) + jnp.sum(z[1] ** 2)}
    flow = games.game_flow(bilinear, x0, y0, t1=20.0, observables=energy, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(flow.values["r2"], flow.values["r2"][0], rtol=1e-7)
    for method in ("extragradient", "gda", "alternating"):
        # two rotation modes: the slow one dominates the second half of 2000 steps
        traj = games.descent_ascent(bilinear, x0, y0, eta=0.05, steps=2000, method=method)
        rate = fitted_rate(traj.ts, traj.values["field_norm"], 0.5)
        if method == "alternating":  # a symplectic-like map: rho = 1, bounded
            np.testing.assert_allclose(la.spectral_radius[method], 1.0, atol=1e-12)
            assert abs(rate) < 0.02
        else:
            np.testing.assert_allclose(rate, la.rates[method], rtol=0.03)
    assert la.rates["extragradient"] > 0 > la.rates["gda"]


def test_gda_divergence_is_reported_in_stats():
    x0, y0 = jnp.array([1.0, -0.5]), jnp.array([0.3, 0.8])
    traj = games.descent_ascent(bilinear, x0, y0, eta=0.5, steps=6000, method="gda", n_save=61)
    assert dynamics.STATUS_NAMES[int(traj.stats.status)] == "nonfinite"
    # |z| grows like rho^k with rho(I + eta J) from local_analysis: overflow near k* below
    la = games.local_analysis(bilinear, jnp.zeros(2), jnp.zeros(2), eta=0.5)
    k_star = np.log(np.finfo(np.float64).max) / np.log(float(la.spectral_radius["gda"]))
    assert 0.5 * k_star < float(traj.stats.nonfinite_t) / 0.5 <= 1.1 * k_star + 100


def test_optimistic_equals_optax_optimistic_gradient_descent():
    x0, y0 = jnp.array([1.0, -0.5]), jnp.array([0.3, 0.8])
    f = lambda x, y: bilinear(x, y) + 0.1 * jnp.sum(x**2) - 0.05 * jnp.sum(y**4)  # noqa: E731
    traj = games.descent_ascent(f, x0, y0, eta=0.05, steps=50, method="optimistic", n_save=2)
    opt_x, opt_y = (optax.optimistic_gradient_descent(0.05) for _ in range(2))
    x, y = x0, y0
    sx, sy = opt_x.init(x), opt_y.init(y)
    for _ in range(50):
        gx, gy = jax.grad(f, argnums=(0, 1))(x, y)
        ux, sx = opt_x.update(gx, sx)
        uy, sy = opt_y.update(-gy, sy)  # the max player descends -f
        x, y = optax.apply_updates(x, ux), optax.apply_updates(y, uy)
    np.testing.assert_allclose(traj.final[0], x, rtol=1e-12)
    np.testing.assert_allclose(traj.final[1], y, rtol=1e-12)


def test_proximal_step_solves_the_implicit_equation():
    # a linear field: the proximal point step is exactly (I - eta J)^{-1} z
    la = games.local_analysis(quad, 0.0, 0.0, eta=0.2)
    stepper = games.descent_ascent_step(quad, eta=0.2, method="proximal")
    state = stepper.step(stepper.init((jnp.array(1.0), jnp.array(0.5))))
    exact = np.linalg.solve(np.eye(2) - 0.2 * np.asarray(la.jacobian), [1.0, 0.5])
    np.testing.assert_allclose(jnp.stack(stepper.value(state)), exact, rtol=1e-12)
    assert bool(state.inner_ok)
    # too few inner iterations: reported, not silent
    short = games.descent_ascent(
        quad, 1.0, 0.5, eta=0.2, steps=3, method="proximal", prox_iterations=2
    )
    assert dynamics.STATUS_NAMES[int(short.stats.status)] == "inner_solver_not_converged"


def test_partial_curvature_averaged_rate_for_small_curvature():
    # x, y in R^2; curvature only on x_1; interaction B = R diag(3, 2) (distinct singular values:
    # A's eigenvectors (u_k, +-i v_k)/sqrt(2) are in general position w.r.t. ker S = {x_1 = 0})
    c, s = np.cos(0.6), np.sin(0.6)
    b = jnp.array([[c, -s], [s, c]]) @ jnp.diag(jnp.array([3.0, 2.0]))

    def f(x, y, eps):
        return 0.5 * eps * x[0] ** 2 + x @ b @ y

    for eps, tol in ((0.05, 1e-3), (0.3, 2e-2)):
        la = games.local_analysis(f, jnp.zeros(2), jnp.zeros(2), args=eps)
        assert np.min(np.linalg.eigvalsh(-la.symmetric)) == pytest.approx(0.0, abs=1e-14)
        # first order: u^H S u = -eps (u_k)_1^2 / 2 with u_1 = (c, s), u_2 = (-s, c)
        np.testing.assert_allclose(la.averaged_rate, eps * min(c, s) ** 2 / 2, rtol=1e-10)
        np.testing.assert_allclose(la.flow_rate, la.averaged_rate, rtol=tol)


def test_vmap_over_step_sizes_and_no_retrace():
    run = jax.jit(
        lambda eta: (
            games.descent_ascent(
                quad, 1.0, 0.5, eta=eta, steps=50, method="extragradient", n_save=3
            ).final
        )
    )
    etas = jnp.array([0.05, 0.1])
    single = [run(eta) for eta in etas]
    assert run._cache_size() == 1
    xs, ys = jax.vmap(run)(etas)
    for i, (xi, yi) in enumerate(single):
        np.testing.assert_allclose([xs[i], ys[i]], [xi, yi], rtol=1e-12)
