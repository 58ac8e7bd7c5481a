"""Lanes fail alone, in every batching mode: a lane that blows up, turns non-finite or turns
stiff mid-run is reported with its own status, and the others finish as if solved alone."""

import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics

MODES = ("map", "vmap", "fused")


def riccati(a):
    # dy/dt = a y^2, y(0) = 1: y(t) = 1 / (1 - a t), blows up at t = 1/a for a > 0
    return dynamics.integrate(lambda t, y, args: a * y**2, jnp.ones(()), t1=3.0, n_save=7)


@pytest.fixture(scope="module")
def three_lanes():
    a = jnp.array([-0.5, 1.0, -1.0])
    return {m: dynamics.sweep(riccati, a, batching=m, progress=False) for m in MODES}


@pytest.mark.parametrize("mode", MODES)
def test_a_lane_that_blows_up_fails_alone(three_lanes, mode):
    out = three_lanes[mode]
    # the middle lane stalls at its singularity t = 1, as its own solve does; the others reach
    # t1 = 3 with y(3) = 1 / (1 + 3/2) = 0.4 and 1 / (1 + 3) = 0.25 to the solver's tolerance
    # (rtol 1e-6 per step over ~10 steps: 1e-4 relative is a generous global bound)
    np.testing.assert_array_equal(out.stats.status, [0, 1, 0])
    np.testing.assert_allclose(out.stats.t_final[np.array([0, 2])], 3.0, rtol=1e-12)
    assert abs(float(out.stats.t_final[1]) - 1.0) < 1e-3
    np.testing.assert_allclose(out.final[np.array([0, 2])], [0.4, 0.25], rtol=1e-4)
    np.testing.assert_allclose(out.ts[:, -1], 3.0)  # every lane's own save grid
    assert np.all(np.isinf(np.asarray(out.stats.nonfinite_t)))  # it stalled, never overflowed


def test_every_mode_reports_the_failing_lane_alike(three_lanes):
    ref = three_lanes["map"]
    for mode in ("vmap", "fused"):
        out = three_lanes[mode]
        np.testing.assert_array_equal(out.stats.status, ref.stats.status)
        np.testing.assert_allclose(out.stats.t_final, ref.stats.t_final, rtol=1e-9)
        np.testing.assert_allclose(
            out.final[np.array([0, 2])], ref.final[np.array([0, 2])], rtol=1e-5
        )


def nan_after_one(a):
    # lane a = 2 turns non-finite at t = 1 (its field is NaN there): a lone solve rejects every
    # step past t = 1 and stops at max_steps; the other lanes decay as exp(-a t)
    f = lambda t, y, args: jnp.where((a > 1.5) & (t > 1.0), jnp.nan, -a * y)  # noqa: E731
    return dynamics.integrate(f, jnp.ones(()), t1=3.0, n_save=4, max_steps=3000)


def test_a_lane_that_turns_nonfinite_is_frozen_and_redone_alone():
    a = jnp.array([1.0, 2.0, 0.5])
    fused = dynamics.sweep(nan_after_one, a, batching="fused", progress=False)
    alone = dynamics.sweep(nan_after_one, a, batching="map", progress=False)
    np.testing.assert_array_equal(fused.stats.status, [0, 1, 0])
    np.testing.assert_array_equal(fused.stats.status, alone.stats.status)
    np.testing.assert_allclose(fused.stats.t_final, [3.0, 1.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(
        fused.final[np.array([0, 2])], np.exp(-3.0 * np.array([1.0, 0.5])), rtol=1e-5
    )
    # the frozen lane did not stall the fused solve: the good lanes kept its (shared) steps,
    # far fewer than the failing lane's max_steps; the failing lane's report is its own solve's
    assert fused.stats.num_steps[0] == fused.stats.num_steps[2] < 100
    assert int(fused.stats.num_steps[1]) == int(alone.stats.num_steps[1]) == 3000


def stiff_after_half(k):
    # y' = -c(t) y with c = 1 before t = 0.5 and k after: explicit Tsit5 needs ~k/3.5 steps per
    # unit time once stiff, so k = 1e5 exhausts max_steps = 2000 and k = 1, 2 need a few dozen
    f = lambda t, y, args: -jnp.where(t > 0.5, k, 1.0) * y  # noqa: E731
    # the jump of the field at t = 0.5 costs accuracy at the default tolerance: solve tighter
    return dynamics.integrate(
        f, jnp.ones(2), t1=1.0, n_save=3, max_steps=2000, rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_lane_that_turns_stiff_fails_alone(mode):
    k = jnp.array([1.0, 1e5, 2.0])
    out = dynamics.sweep(stiff_after_half, k, batching=mode, progress=False)
    np.testing.assert_array_equal(out.stats.status, [0, 1, 0])
    # y(1) = exp(-1) and exp(-0.5 - 2 * 0.5) for the lanes that finish
    np.testing.assert_allclose(out.final[np.array([0, 2]), 0], np.exp([-1.0, -1.5]), rtol=1e-5)
    t_stop = float(out.stats.t_final[1])
    assert 0.5 < t_stop < 0.6  # it stalled just after turning stiff, like its own solve


def test_fused_ok_lanes_match_their_own_solves_and_auto_is_map_on_cpu():
    a = jnp.array([-0.5, -1.0, -2.0])
    fused = dynamics.sweep(riccati, a, batching="fused", progress=False)
    auto = dynamics.sweep(riccati, a, progress=False)
    alone = dynamics.sweep(riccati, a, batching="map", progress=False)
    assert np.all(np.asarray(fused.stats.ok))
    np.testing.assert_allclose(fused.final, 1.0 / (1.0 - 3.0 * np.asarray(a)), rtol=1e-4)
    np.testing.assert_array_equal(auto.stats.num_steps, alone.stats.num_steps)
    np.testing.assert_allclose(fused.final, alone.final, rtol=1e-4)
    # one shared step sequence for the fused chunk
    assert len(set(np.asarray(fused.stats.num_steps).tolist())) == 1
