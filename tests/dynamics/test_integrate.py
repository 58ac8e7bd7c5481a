"""integrate / gradient_flow against closed forms, convergence orders, failures as data."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from flowax import dynamics

A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
B = np.array([1.0, -2.0, 0.5])
THETA0 = np.array([0.3, 0.1, -1.0])


def quad_loss(theta):
    return 0.5 * theta @ (A @ theta) - B @ theta


def exact_quadratic(t):
    # theta' = -(A theta - b): theta(t) = theta* + expm(-A t) (theta0 - theta*)
    star = np.linalg.solve(A, B)
    return star + scipy.linalg.expm(-A * t) @ (THETA0 - star)


def test_gradient_flow_quadratic_matches_expm():
    ts = np.linspace(0.0, 2.0, 11)
    traj = dynamics.gradient_flow(
        quad_loss,
        jnp.asarray(THETA0),
        t1=2.0,
        ts=ts,
        rtol=1e-11,
        atol=1e-13,
        observables={"theta": lambda t, p: p},
    )
    expected = np.stack([exact_quadratic(t) for t in ts])
    # global error of an adaptive 5th-order solve is a small multiple of the tolerance
    np.testing.assert_allclose(traj.values["theta"], expected, atol=1e-9)
    np.testing.assert_allclose(traj.final, exact_quadratic(2.0), atol=1e-9)
    np.testing.assert_allclose(traj.ts, ts, rtol=1e-14)
    assert int(traj.stats.status) == 0 and np.isinf(traj.stats.nonfinite_t)
    assert float(traj.stats.t_final) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "solver,order,dts,tol",
    # Tsit5's coefficients minimize its 5th-order error term, so the 6th-order term still shows
    # at steps where the error stays above rounding (slope 5.4 at dt = 0.05 .. 0.0125).
    [
        ("euler", 1, (0.1, 0.05, 0.025), 0.25),
        ("heun", 2, (0.1, 0.05, 0.025), 0.25),
        ("midpoint", 2, (0.1, 0.05, 0.025), 0.25),
        ("bosh3", 3, (0.2, 0.1, 0.05), 0.25),
        ("tsit5", 5, (0.05, 0.025, 0.0125), 0.5),
    ],
)
def test_fixed_step_convergence_order(solver, order, dts, tol):
    errors = []
    for dt in dts:
        traj = dynamics.gradient_flow(
            quad_loss,
            jnp.asarray(THETA0),
            t1=1.6,
            solver=solver,
            adaptive=False,
            dt0=dt,
            n_save=2,
            observables={},
        )
        errors.append(np.linalg.norm(np.asarray(traj.final) - exact_quadratic(1.6)))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - order) < tol, (solver, slope, errors)


def test_saxe_two_layer_scalar_logistic():
    # f(x) = a b x on whitened scalar data, L = (ab - s)^2 / 2, balanced init a = b = sqrt(w0):
    # w = ab obeys w' = (a^2 + b^2)(s - w) = 2 w (s - w), the logistic solution (Saxe et al. 2014)
    # w(t) = s w0 e^{2st} / (s - w0 + w0 e^{2st}).
    s, w0 = 2.0, 1e-3
    ts = np.linspace(0.0, 4.0, 41)
    traj = dynamics.gradient_flow(
        lambda p: 0.5 * (p["a"] * p["b"] - s) ** 2,
        {"a": jnp.sqrt(w0), "b": jnp.sqrt(w0)},
        t1=4.0,
        ts=ts,
        rtol=1e-11,
        atol=1e-13,
        observables={"w": lambda t, p: p["a"] * p["b"]},
    )
    e = np.exp(2 * s * ts)
    np.testing.assert_allclose(traj.values["w"], s * w0 * e / (s - w0 + w0 * e), rtol=1e-7)


def test_integrate_jit_vmap_and_no_retrace():
    def run(k, y0):
        return dynamics.integrate(
            lambda t, y, a: -a * y,
            y0,
            t1=1.0,
            args=k,
            n_save=5,
            observables={"y": lambda t, y: y},
        )

    traced = chex.assert_max_traces(run, n=1)
    jitted = jax.jit(traced)
    out1 = jitted(2.0, jnp.ones(3))
    out2 = jitted(3.0, jnp.ones(3))  # no retrace for new values
    np.testing.assert_allclose(out2.final, np.exp(-3.0) * np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(out1.values["y"], run(2.0, jnp.ones(3)).values["y"], rtol=1e-12)
    ks = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(run, in_axes=(0, None))(ks, jnp.ones(3))
    assert batched.values["y"].shape == (3, 5, 3) and batched.ts.shape == (3, 5)
    np.testing.assert_allclose(batched.final[:, 0], np.exp(-np.asarray(ks)), rtol=1e-6)


def test_gradient_flow_differentiable():
    # reverse-mode through the (unfused) solve: d/dk of y(1) for y' = -k y is -exp(-k)
    def final(k):
        return dynamics.integrate(
            lambda t, y, a: -a * y, jnp.ones(()), t1=1.0, args=k, n_save=2, rtol=1e-10, atol=1e-12
        ).final

    np.testing.assert_allclose(jax.grad(final)(0.7), -np.exp(-0.7), rtol=1e-7)


def test_nonfinite_is_reported_as_data():
    # Gradient descent on L = theta^2 / 2 with lr = 3: theta_k = (-2)^k, so the loss theta^2 / 2
    # first overflows float64 at k = 512 (4^512 = 2^1024 > max float), i.e. at time 512 * lr.
    traj = dynamics.gradient_descent(
        lambda p: 0.5 * p**2, jnp.ones(()), lr=3.0, steps=600, save_steps=np.arange(601)
    )
    assert int(traj.stats.status) == 2
    assert float(traj.stats.nonfinite_t) == pytest.approx(512 * 3.0)
    assert np.all(np.isfinite(np.asarray(traj.values["loss"])[:512]))
    # Fixed-step Euler of y' = y^2 from y = 1 (blow-up at t = 1) overflows: reported, not silent.
    blow = dynamics.integrate(
        lambda t, y, a: y**2,
        jnp.ones(()),
        t1=2.0,
        solver="euler",
        adaptive=False,
        dt0=0.01,
        observables={"y": lambda t, y: y},
    )
    assert int(blow.stats.status) == 2 and 1.0 < float(blow.stats.nonfinite_t) < 2.0
    # Adaptive: the solver stalls at the singularity and says where it stopped.
    stall = dynamics.integrate(lambda t, y, a: y**2, jnp.ones(()), t1=2.0, max_steps=2000)
    assert int(stall.stats.status) == 1
    assert float(stall.stats.t_final) == pytest.approx(1.0, abs=1e-3)


def test_bad_input():
    f = lambda t, y, a: -y  # noqa: E731
    y0 = jnp.ones(2)
    with pytest.raises(ValueError, match="t1: expected t1 > t0"):
        dynamics.integrate(f, y0, t1=0.0)
    with pytest.raises(ValueError, match="^solver: unknown solver"):
        dynamics.integrate(f, y0, t1=1.0, solver="rk45")
    with pytest.raises(ValueError, match="solver: Euler has no error estimate"):
        dynamics.integrate(f, y0, t1=1.0, solver="euler")
    with pytest.raises(ValueError, match="^dt0: a fixed-step run"):
        dynamics.integrate(f, y0, t1=1.0, adaptive=False)
    with pytest.raises(ValueError, match="ts: expected save times within"):
        dynamics.integrate(f, y0, t1=1.0, ts=jnp.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="^field: expected an output leaf of shape"):
        dynamics.integrate(lambda t, y, a: y[:1], y0, t1=1.0)
    with pytest.raises(ValueError, match="^rtol: expected"):
        dynamics.integrate(f, y0, t1=1.0, rtol=-1.0)
    with pytest.raises(ValueError, match="params.*non-finite"):
        dynamics.gradient_flow(lambda p: jnp.sum(p**2), jnp.array([1.0, jnp.nan]), t1=1.0)
    with pytest.raises(ValueError, match="loss: expected a function returning a real scalar"):
        dynamics.gradient_flow(lambda p: p**2, jnp.ones(2), t1=1.0)
    with pytest.raises(ValueError, match="^observables: expected a dict"):
        dynamics.integrate(f, y0, t1=1.0, observables=[lambda t, y: y])
    with pytest.raises(ValueError, match="^spacing: expected one of"):
        dynamics.integrate(f, y0, t1=1.0, spacing="geometric")
    with pytest.raises(ValueError, match="^key: expected a PRNG key"):
        dynamics.integrate(f, y0, t1=1.0, dt0=0.1, diffusion=lambda t, y, a: y, key=0)


def test_log_spacing_saves_t0_then_five_decades():
    traj = dynamics.integrate(
        lambda t, y, a: -y,
        jnp.ones(()),
        t1=2.0,
        n_save=7,
        spacing="log",
        observables={"y": lambda t, y: y},
    )
    np.testing.assert_allclose(traj.ts, [0.0] + list(2.0 * np.logspace(-5, 0, 6)), rtol=1e-12)
    np.testing.assert_allclose(traj.values["y"], np.exp(-np.asarray(traj.ts)), rtol=1e-6)
