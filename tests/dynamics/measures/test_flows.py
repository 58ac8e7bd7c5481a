"""Measure flows: Fisher-Rao / Wasserstein closed forms, WFR descent, conic GD -> WFR at order 1."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics.measures import Particles


def v_fn(x):
    return 0.5 * jnp.sum(x**2) + jnp.cos(x[0])


def particles(m=5, d=2, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    w = jax.random.uniform(k1, (m,), minval=0.5, maxval=1.5)
    return Particles(w / w.sum(), jax.random.normal(k2, (m, d)))


def test_first_variation_of_potential_and_interaction():
    p = particles()
    v, g = dynamics.measures.first_variation(dynamics.measures.potential_energy(v_fn), p)
    np.testing.assert_allclose(v, jax.vmap(v_fn)(p.positions), rtol=1e-14)
    np.testing.assert_allclose(g, jax.vmap(jax.grad(v_fn))(p.positions), rtol=1e-13)
    # interaction: V(x) = sum_j w_j k(x, x_j)
    kern = lambda a, b: jnp.exp(-jnp.sum((a - b) ** 2))  # noqa: E731
    v, _ = dynamics.measures.first_variation(dynamics.measures.interaction_energy(kern), p)
    expected = [
        sum(p.weights[j] * kern(p.positions[i], p.positions[j]) for j in range(5)) for i in range(5)
    ]
    np.testing.assert_allclose(v, expected, rtol=1e-13)


def test_fisher_rao_closed_form():
    # F = int V dmu with fixed positions: w_i(t) = w_i(0) exp(-beta V(x_i) t)
    p, beta = particles(), 0.7
    ts = np.linspace(0, 2, 9)
    traj = dynamics.measures.fisher_rao_flow(
        dynamics.measures.potential_energy(v_fn),
        p,
        t1=2.0,
        beta=beta,
        ts=ts,
        rtol=1e-11,
        atol=1e-13,
        observables={"w": lambda t, q: q.weights},
    )
    expected = p.weights[None] * np.exp(
        -beta * np.asarray(jax.vmap(v_fn)(p.positions))[None] * ts[:, None]
    )
    np.testing.assert_allclose(traj.values["w"], expected, rtol=1e-9)
    np.testing.assert_array_equal(traj.final.positions, p.positions)


def test_wasserstein_quadratic_closed_form_and_mass():
    # V = k |x|^2 / 2: x_i(t) = x_i(0) exp(-alpha k t); masses untouched (exactly)
    p, k, alpha = particles(), 1.5, 0.8
    traj = dynamics.measures.wasserstein_flow(
        dynamics.measures.potential_energy(lambda x: 0.5 * k * x @ x),
        p,
        t1=1.0,
        alpha=alpha,
        rtol=1e-11,
        atol=1e-13,
    )
    np.testing.assert_allclose(traj.final.positions, p.positions * np.exp(-alpha * k), rtol=1e-9)
    np.testing.assert_array_equal(traj.final.weights, p.weights)
    np.testing.assert_array_equal(traj.values["mass"], np.full(101, float(p.mass)))


def _risk():
    z = jax.random.normal(jax.random.key(3), (20, 2))
    y = jnp.tanh(z @ jnp.array([1.0, -0.5]))
    return dynamics.measures.two_layer_risk(z, y, activation="tanh", reg=1e-3)


def test_wfr_decreases_convex_objective_and_keeps_weights_positive():
    objective = _risk()
    p0 = Particles(jnp.full(8, 1.0 / 8), jax.random.normal(jax.random.key(4), (8, 3)))
    traj = dynamics.measures.wfr_flow(
        objective,
        p0,
        t1=5.0,
        alpha=1.0,
        beta=1.0,
        n_save=51,
        observables={"F": lambda t, p: objective(p), "wmin": lambda t, p: jnp.min(p.weights)},
    )
    f = np.asarray(traj.values["F"])
    # a gradient flow: dF/dt = -(alpha |grad V|^2 + beta V^2) integrated against mu <= 0
    assert np.all(np.diff(f) <= 1e-12), np.diff(f).max()
    assert f[-1] < 0.5 * f[0]
    assert np.all(np.asarray(traj.values["wmin"]) > 0)


def test_normalized_flow_conserves_mass():
    objective = _risk()
    p0 = Particles(jnp.full(6, 1.0 / 6), jax.random.normal(jax.random.key(5), (6, 3)))
    traj = dynamics.measures.wfr_flow(objective, p0, t1=2.0, normalize=True)
    np.testing.assert_allclose(traj.values["mass"], 1.0, rtol=1e-10)


def test_conic_gd_converges_to_wfr_at_first_order():
    objective = _risk()
    p0 = Particles(jnp.full(6, 1.0 / 6), jax.random.normal(jax.random.key(6), (6, 3)))
    t1 = 1.0
    ref = dynamics.measures.wfr_flow(
        objective, p0, t1=t1, alpha=1.0, beta=2.0, rtol=1e-11, atol=1e-13
    ).final
    lrs = np.array([0.02, 0.01, 0.005])
    errs = []
    for lr in lrs:
        out = dynamics.measures.conic_particle_gd(
            objective, p0, lr=float(lr), steps=int(round(t1 / lr)), alpha=1.0, beta=2.0
        ).final
        errs.append(
            np.linalg.norm(
                np.concatenate(
                    [np.asarray(out.weights - ref.weights), np.ravel(out.positions - ref.positions)]
                )
            )
        )
    order = np.polyfit(np.log(lrs), np.log(errs), 1)[0]
    assert abs(order - 1.0) < 0.15, (order, errs)
    eu = dynamics.measures.conic_particle_gd(
        objective, p0, lr=0.005, steps=200, alpha=1.0, beta=2.0, retraction="euclidean"
    ).final
    assert np.linalg.norm(np.asarray(eu.weights - ref.weights)) < 3 * errs[-1]


def test_vmap_jit_no_retrace():
    objective = dynamics.measures.potential_energy(v_fn)

    def run(scale):
        p = particles()
        return dynamics.measures.wfr_flow(
            objective, Particles(p.weights, scale * p.positions), t1=1.0, n_save=3
        ).values["objective"]

    traced = jax.jit(chex.assert_max_traces(run, n=1))
    a = traced(1.0)
    b = traced(2.0)  # no retrace for a new value
    batched = jax.vmap(run)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(batched[0], a, rtol=1e-9)
    np.testing.assert_allclose(batched[1], b, rtol=1e-9)
    assert not np.allclose(a, b)


def test_bad_input():
    objective = dynamics.measures.potential_energy(v_fn)
    p = particles()
    with pytest.raises(ValueError, match="weights: expected nonnegative"):
        dynamics.measures.wfr_flow(objective, Particles(-p.weights, p.positions), t1=1.0)
    with pytest.raises(ValueError, match=r"positions: expected shape \[5, ...\]"):
        dynamics.measures.wfr_flow(objective, Particles(p.weights, p.positions[:4]), t1=1.0)
    with pytest.raises(ValueError, match="weights: expected finite"):
        dynamics.measures.wfr_flow(
            objective, Particles(p.weights.at[0].set(jnp.inf), p.positions), t1=1.0
        )
    with pytest.raises(ValueError, match="objective: expected a function returning a real scalar"):
        dynamics.measures.wfr_flow(lambda q: q.weights, p, t1=1.0)
    with pytest.raises(ValueError, match="^alpha: expected"):
        dynamics.measures.wfr_flow(objective, p, t1=1.0, alpha=-1.0)
    with pytest.raises(ValueError, match="^beta: expected"):
        dynamics.measures.wfr_field(objective, beta=jnp.nan)
    with pytest.raises(ValueError, match="^retraction: expected one of"):
        dynamics.measures.conic_particle_gd(objective, p, lr=0.1, steps=3, retraction="sphere")
    with pytest.raises(ValueError, match="^lr: expected"):
        dynamics.measures.conic_particle_gd(objective, p, lr=0.0, steps=3)


def test_two_layer_risk_chunked_equals_plain_formula():
    z = jax.random.normal(jax.random.key(7), (37, 3))  # 37: chunks of 8 leave a padded tail
    y = jnp.sin(z[:, 0])
    p = Particles(
        jax.random.uniform(jax.random.key(8), (5,)), jax.random.normal(jax.random.key(9), (5, 4))
    )

    def plain(q):
        a, b = q.positions[:, 0], q.positions[:, 1:]
        pred = jax.nn.relu(z @ b.T) @ (q.weights * a)
        return 0.5 * jnp.mean((pred - y) ** 2) + 0.01 * jnp.sum(
            q.weights * jnp.sum(q.positions**2, 1)
        )

    chunked = dynamics.measures.two_layer_risk(z, y, activation="relu", reg=0.01, chunk_size=8)
    np.testing.assert_allclose(chunked(p), plain(p), rtol=1e-13)
    for g1, g2 in zip(
        jax.tree_util.tree_leaves(jax.grad(chunked)(p)),
        jax.tree_util.tree_leaves(jax.grad(plain)(p)),
        strict=True,
    ):
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)


def test_conic_gd_under_vmap_and_sweep_over_scales():
    objective = _risk()
    base = Particles(jnp.full(6, 1.0 / 6), jax.random.normal(jax.random.key(6), (6, 3)))

    def run(scale):
        p = Particles(base.weights, scale * base.positions)
        return dynamics.measures.conic_particle_gd(objective, p, lr=0.05, steps=20, n_save=3)

    scales = jnp.array([0.5, 1.0, 2.0])
    swept = dynamics.sweep(run, scales, progress=False)
    vmapped = jax.vmap(run)(scales)
    single = jax.jit(run)(scales[2])
    np.testing.assert_allclose(swept.values["objective"], vmapped.values["objective"], rtol=1e-12)
    np.testing.assert_allclose(swept.final.weights[2], single.final.weights, rtol=1e-12)
