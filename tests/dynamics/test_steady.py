"""Early exit at steady state (integrate / gradient_flow ``steady_state=``, ``stop_if=``):
closed-form stop times, held observables, fused lanes that freeze on their own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics

TOL = 1e-4
RATES = jnp.array([0.5, 1.0, 2.0, 4.0])
OBS = {"y": lambda t, y: y[0], "t": lambda t, y: t}


def decay(t, y, a):
    return -a * y


def run(a, **kw):
    return dynamics.integrate(
        decay,
        jnp.ones(1),
        t1=30.0,
        args=a,
        observables=OBS,
        n_save=16,
        rtol=1e-9,
        atol=1e-12,
        steady_state=TOL,
        **kw,
    )


def t_star(a):
    """|dy/dt| = a e^{-a t} falls below TOL at t* = log(a / TOL) / a."""
    return np.log(np.asarray(a) / TOL) / np.asarray(a)


@pytest.fixture(scope="module")
def lone():
    return jax.jit(run)(2.0), jax.jit(
        lambda a: dynamics.integrate(
            decay, jnp.ones(1), t1=30.0, args=a, observables=OBS, n_save=16, rtol=1e-9, atol=1e-12
        )
    )(2.0)


def test_lone_lane_stops_at_the_first_step_past_the_closed_form_time(lone):
    tr, full = lone
    ts, t_final = np.asarray(tr.ts), float(tr.stats.t_final)
    assert int(tr.stats.status) == 0
    # The event is checked at step ends: the stop is at most one step after t*; this run's
    # steps near t* are ~0.1 (rtol 1e-9), so within 5% of t* = 4.95.
    assert t_star(2.0) <= t_final <= 1.05 * t_star(2.0)
    assert abs(float(tr.final[0]) - np.exp(-2.0 * t_final)) < 1e-8
    assert 2.0 * float(tr.final[0]) < TOL  # the field there is below the tolerance
    assert int(tr.stats.num_steps) < int(full.stats.num_steps)
    # Saves before the stop: the flow (as without early exit); after it: the frozen state, with
    # time-dependent observables evaluated at their own save times.
    before, after = ts <= t_final, ts > t_final
    np.testing.assert_allclose(tr.values["y"][before], full.values["y"][before], rtol=1e-7)
    assert np.all(np.asarray(tr.values["y"])[after] == float(tr.final[0]))
    np.testing.assert_array_equal(tr.values["t"], ts)


@pytest.mark.parametrize("batching", ["map", "vmap", "fused"])
def test_sweep_lanes_stop_on_their_own(batching):
    out = dynamics.sweep(run, RATES, batching=batching, progress=False)
    assert np.all(np.asarray(out.stats.status) == 0)
    t_final = np.asarray(out.stats.t_final)
    # Lone lanes stop at the first step end past t*; fused lanes freeze at the first shared
    # step start past it (their clocks stop there): within one step (< 5% here) either way.
    assert np.all(t_star(RATES) <= t_final) and np.all(t_final <= 1.05 * t_star(RATES))
    final = np.asarray(out.final)[:, 0]
    np.testing.assert_allclose(final, np.exp(-np.asarray(RATES) * t_final), rtol=1e-6)
    assert np.all(np.asarray(RATES) * final <= TOL * (1 + 1e-6))


def test_map_sweep_equals_lone_runs_bit_for_bit():
    out = dynamics.sweep(run, RATES, batching="map", progress=False)
    one = jax.jit(run)
    for i, a in enumerate(RATES):
        assert np.asarray(out.values["y"][i]).tobytes() == np.asarray(one(a).values["y"]).tobytes()


def test_fused_frozen_lanes_cost_no_steps():
    """One slow lane (rate 0.5) and three fast ones (rate 50): without early exit the fast lanes'
    stability limit (explicit Tsit5, h <~ 3.5 / 50) sets the step of the whole shared solve to
    t1 = 30; with it they freeze at t* = 0.28 and the solve costs about what the two kinds of
    lane cost alone, one after the other."""

    def make(**kw):
        return lambda a: dynamics.integrate(
            decay, jnp.ones(1), t1=30.0, args=a, n_save=16, rtol=1e-6, atol=1e-8, **kw
        )

    rates = jnp.array([0.5, 50.0, 50.0, 50.0])
    fused = dynamics.sweep(make(steady_state=TOL), rates, batching="fused", progress=False)
    plain = dynamics.sweep(make(), rates, batching="fused", progress=False)
    alone = sum(int(jax.jit(make(steady_state=TOL))(a).stats.num_steps) for a in (0.5, 50.0))
    assert np.all(np.asarray(fused.stats.status) == 0)
    t_fast = np.asarray(fused.stats.t_final[1:])  # within one step (< 3.5 / 50, stability)
    assert np.all(t_star(50.0) <= t_fast) and np.all(t_fast <= t_star(50.0) + 3.5 / 50)
    assert int(fused.stats.num_steps[0]) <= alone + 5
    assert int(plain.stats.num_steps[0]) > 5 * int(fused.stats.num_steps[0])


def test_gradient_flow_stop_if_a_target_loss():
    """Gradient flow of L = a |p|^2 / 2: L(t) = L0 e^{-2 a t}, so L < eps first at
    t = log(L0 / eps) / (2 a)."""
    a, eps = 1.5, 1e-6
    loss = lambda p: 0.5 * a * jnp.sum(p**2)  # noqa: E731
    p0 = jnp.array([1.0, -2.0])
    tr = dynamics.gradient_flow(
        loss, p0, t1=50.0, stop_if=lambda t, p, args: loss(p) < eps, rtol=1e-9, atol=1e-12
    )
    t_exact = np.log(float(loss(p0)) / eps) / (2 * a)
    assert int(tr.stats.status) == 0
    assert t_exact <= float(tr.stats.t_final) <= 1.05 * t_exact
    assert float(loss(tr.final)) < eps
    # stop_if and steady_state together: both must hold (here the loss target is the later).
    both = dynamics.gradient_flow(
        loss,
        p0,
        t1=50.0,
        steady_state=1.0,
        stop_if=lambda t, p, args: loss(p) < eps,
        rtol=1e-9,
        atol=1e-12,
    )
    assert float(both.stats.t_final) == pytest.approx(float(tr.stats.t_final), rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steady_state": 0.0}, "steady_state: expected a finite scalar > 0"),
        ({"steady_state": -1e-3}, "steady_state: expected a finite scalar > 0"),
        ({"steady_state": float("nan")}, "steady_state: expected a finite scalar > 0"),
        ({"stop_if": 3}, "stop_if"),
        ({"stop_if": lambda t, y, a: y}, "stop_if: expected stop_if\\(t, y, args\\) to return one"),
        (
            {
                "steady_state": 1e-3,
                "diffusion": lambda t, y, a: y,
                "key": jax.random.key(0),
                "dt0": 0.1,
            },
            "steady_state: early exit is for ODEs",
        ),
    ],
)
def test_bad_early_exit_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dynamics.integrate(decay, jnp.ones(2), t1=1.0, args=1.0, **kwargs)


def test_traced_tolerance_is_refused():
    with pytest.raises(ValueError, match="steady_state: expected a concrete tolerance"):
        jax.jit(
            lambda tol: dynamics.integrate(decay, jnp.ones(1), t1=1.0, args=1.0, steady_state=tol)
        )(1e-3)
