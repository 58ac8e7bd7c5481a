"""Mean-field Langevin: stationary variance of the Ornstein-Uhlenbeck case, annealing, keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics.measures import Particles


def test_stationary_variance_of_quadratic_potential():
    # F = int k x^2/2 dmu, temperature T: the Euler-Maruyama chain x <- (1 - hk) x + sqrt(2hT) xi
    # has the stationary variance T / (k (1 - hk/2)) (-> T/k as h -> 0).
    m, k, temp, h = 20000, 2.0, 0.3, 0.05
    p0 = Particles(jnp.full(m, 1.0 / m), jnp.zeros((m, 1)))
    traj = dynamics.measures.mean_field_langevin(
        dynamics.measures.potential_energy(lambda x: 0.5 * k * x @ x),
        p0,
        temperature=temp,
        lr=h,
        steps=200,
        key=jax.random.key(0),
        n_save=5,
        observables={"var": lambda t, p: jnp.var(p.positions)},
    )
    expected = temp / (k * (1 - h * k / 2))
    # after t = 10 (k t = 20: the initial condition is forgotten to e^-40) the m particles are
    # independent Gaussian draws: the sample variance has relative std sqrt(2/m) = 1%.
    var = float(traj.values["var"][-1])
    assert abs(var / expected - 1) < 4 * np.sqrt(2 / m), (var, expected)
    assert abs(expected / (temp / k) - 1) < 0.06  # the O(h) bias of the scheme is known


def test_annealing_reaches_lower_energy_on_double_well():
    v = lambda x: (x[0] ** 2 - 1.0) ** 2 + 0.3 * x[0]  # noqa: E731  (minimum near x = -1.04)
    objective = dynamics.measures.potential_energy(v)
    m = 2000
    p0 = Particles(jnp.full(m, 1.0 / m), jax.random.normal(jax.random.key(1), (m, 1)))
    common = dict(lr=0.01, steps=3000, key=jax.random.key(2), n_save=2)
    fixed = dynamics.measures.mean_field_langevin(objective, p0, temperature=0.5, **common)
    annealed = dynamics.measures.mean_field_langevin(
        objective, p0, temperature=lambda t: 0.5 / (1.0 + t), **common
    )
    vals_fixed = np.asarray(jax.vmap(v)(fixed.final.positions))
    vals_anneal = np.asarray(jax.vmap(v)(annealed.final.positions))
    se = np.hypot(vals_fixed.std(), vals_anneal.std()) / np.sqrt(m)
    # fixed T = 0.5 for t = 30 >> the relaxation time: the Gibbs mean energy, by quadrature
    # (the O(h) bias of the scheme at h = 0.01 is below the statistical error here)
    x = np.linspace(-4, 4, 8001)
    vx = (x**2 - 1) ** 2 + 0.3 * x
    gibbs = np.sum(vx * np.exp(-vx / 0.5)) / np.sum(np.exp(-vx / 0.5))
    se_fixed = vals_fixed.std() / np.sqrt(m)
    assert abs(vals_fixed.mean() - gibbs) < 4 * se_fixed, (vals_fixed.mean(), gibbs)
    # annealing to T = 0.5/31 lowers the energy by far more than the statistical error
    assert vals_anneal.mean() < vals_fixed.mean() - 5 * se, (vals_anneal.mean(), vals_fixed.mean())
    log = dynamics.measures.log_annealing(0.5)
    # T0 / log(e + t): T0 at t = 0, T0 / 2 at t = e^2 - e, T0 / 3 at t = e^3 - e
    ts = jnp.array([0.0, np.e**2 - np.e, np.e**3 - np.e])
    np.testing.assert_allclose(log(ts), [0.5, 0.25, 0.5 / 3], rtol=1e-14)


def test_keys_vmap_and_jit():
    objective = dynamics.measures.potential_energy(lambda x: 0.5 * x @ x)
    p0 = Particles(jnp.full(10, 0.1), jnp.ones((10, 2)))

    def run(key):
        return dynamics.measures.mean_field_langevin(
            objective, p0, temperature=0.1, lr=0.1, steps=5, key=key
        ).final.positions

    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(run)(keys)
    np.testing.assert_allclose(batched[1], jax.jit(run)(keys[1]), rtol=1e-12)
    assert not np.allclose(batched[0], batched[1])
    # the noise is N(0, 2 lr T) per step: after 5 steps of x <- (1 - lr) x + noise from x = 1,
    # x = 0.9^5 + sum_k 0.9^k sqrt(0.02) xi_k; over 3 keys x 20 coordinates the mean is within
    # 4 standard errors of 0.9^5
    mean, sd = 0.9**5, np.sqrt(0.02 * sum(0.81**k for k in range(5)))
    assert abs(float(batched.mean()) - mean) < 4 * sd / np.sqrt(batched.size)


def test_bad_input():
    objective = dynamics.measures.potential_energy(lambda x: 0.5 * x @ x)
    p0 = Particles(jnp.full(4, 0.25), jnp.ones((4, 2)))
    kw = dict(lr=0.1, steps=5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="^temperature: expected"):
        dynamics.measures.mean_field_langevin(objective, p0, temperature=0.0, **kw)
    with pytest.raises(ValueError, match="^lr: expected"):
        dynamics.measures.mean_field_langevin(
            objective, p0, temperature=0.1, lr=-1.0, steps=5, key=jax.random.key(0)
        )
    with pytest.raises(ValueError, match="^temperature: expected a finite scalar > 0"):
        dynamics.measures.mean_field_langevin(objective, p0, temperature="hot", **kw)
    with pytest.raises(ValueError, match="^key: expected a PRNG key"):
        dynamics.measures.mean_field_langevin(
            objective, p0, temperature=0.1, lr=0.1, steps=5, key=3
        )
    # a schedule is accepted and annealed (regression: it raised an unnamed TypeError)
    traj = dynamics.measures.mean_field_langevin(
        objective, p0, temperature=dynamics.measures.log_annealing(0.1), **kw
    )
    assert bool(traj.stats.ok)


def test_bilevel_objective_envelope_and_signed_fit():
    z = jax.random.normal(jax.random.key(3), (64, 3))
    y = -jax.nn.relu(z @ jnp.array([1.0, 0.0, 0.0]))  # a negative single neuron: a signed target
    objective = dynamics.measures.bilevel_two_layer_risk(z, y, reg=1e-3)
    m = 32
    b0 = jax.random.normal(jax.random.key(4), (m, 3))
    p = Particles(jnp.full(m, 1.0 / m), b0)
    a_star = dynamics.measures.bilevel_output_weights(z, y, p, reg=1e-3)

    def joint(q, a):
        feats = jax.nn.relu(z @ q.positions.T) * q.weights[None, :]
        return 0.5 * jnp.mean((feats @ a - y) ** 2) + 0.5e-3 * jnp.sum(q.weights * a**2)

    # inner optimality, and the envelope theorem: grad G = partial grad of the joint at a*
    np.testing.assert_allclose(jax.grad(joint, argnums=1)(p, a_star), 0.0, atol=1e-12)
    g1 = jax.grad(objective)(p)
    g2 = jax.grad(joint)(p, a_star)
    np.testing.assert_allclose(g1.positions, g2.positions, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(g1.weights, g2.weights, rtol=1e-8, atol=1e-12)
    # MFLD at low temperature on the bilevel objective fits the signed target
    traj = dynamics.measures.mean_field_langevin(
        objective, p, temperature=1e-6, lr=0.5, steps=1000, key=jax.random.key(5), n_save=2
    )
    f0, f1 = np.asarray(traj.values["objective"])
    # the risk is nonincreasing up to the O(sqrt(T)) noise; the relative residual of the learned
    # signed network |f - y| / |y| (from F >= |f - y|^2 / 2n) becomes small
    rel = np.sqrt(2 * f1 / np.mean(np.asarray(y) ** 2))
    assert f1 < f0 and rel < 0.05, (f0, f1, rel)


def test_sde_solvers_through_diffrax_stationary_variances():
    # OU dX = -k X dt + sqrt(2T) dW with step h, additive noise. Euler-Maruyama:
    # var = T / (k (1 - hk/2)). Heun: X1 = a X0 + (1 - hk/2) sqrt(2T) dW, a = 1 - hk + (hk)^2/2,
    # var = 2 T h (1 - hk/2)^2 / (1 - a^2): O(h^2) from T/k instead of O(h).
    m, k, temp, h = 20000, 2.0, 0.3, 0.1
    p0 = Particles(jnp.full(m, 1.0 / m), jnp.zeros((m, 1)))
    objective = dynamics.measures.potential_energy(lambda x: 0.5 * k * x @ x)
    a = 1 - h * k + (h * k) ** 2 / 2
    exact = {
        "euler": temp / (k * (1 - h * k / 2)),
        "heun": 2 * temp * h * (1 - h * k / 2) ** 2 / (1 - a**2),
    }
    for solver, expected in exact.items():
        traj = dynamics.measures.mean_field_langevin(
            objective,
            p0,
            temperature=temp,
            lr=h,
            steps=100,
            key=jax.random.key(1),
            n_save=3,
            solver=solver,
            observables={"var": lambda t, p: jnp.var(p.positions)},
        )
        var = float(traj.values["var"][-1])
        assert abs(var / expected - 1) < 4 * np.sqrt(2 / m), (solver, var, expected)
        assert int(traj.stats.status) == 0
    assert abs(exact["heun"] * k / temp - 1) < 0.02 < abs(exact["euler"] * k / temp - 1)
