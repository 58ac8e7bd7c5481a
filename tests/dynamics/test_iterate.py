"""The one step contract: every discrete method is a Stepper(init, step(state, args=None)),
run by `iterate` with the save spec of `integrate`, and usable in a user's own jitted loop with
a minibatch per step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import tree_allclose
from flowax import dynamics
from flowax.dynamics.measures import Particles

STEPS, B, D = 12, 8, 3
X = jax.random.normal(jax.random.key(0), (STEPS * B, D))
W_TRUE = jnp.array([1.0, -2.0, 0.5])
Y = X @ W_TRUE
BATCHES = (X.reshape(STEPS, B, D), Y.reshape(STEPS, B))  # minibatch k = rows kB .. (k+1)B - 1


def lsq(w, batch):
    xb, yb = batch
    return 0.5 * jnp.mean((xb @ w - yb) ** 2)


def user_loop(stepper, x0, batches, **init_kw):
    """What a user writes: jit the step once, feed it one minibatch per step."""
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(stepper.step, n=1))
    state = stepper.init(x0, **init_kw)
    for k in range(STEPS):
        state = step(state, jax.tree_util.tree_map(lambda b, k=k: b[k], batches))
    return stepper.value(state)


def test_sgd_minibatch_step_in_user_loop_equals_iterate_and_numpy():
    lr = 0.1
    stepper = dynamics.descent_step(lsq, lr=lr)
    w0 = jnp.zeros(D)
    mine = user_loop(stepper, w0, BATCHES)
    run = dynamics.iterate(stepper, w0, steps=STEPS, batches=BATCHES, dt=lr)
    tree_allclose(run.final, mine, rtol=1e-13)
    # an independent implementation: w <- w - lr X_b^T (X_b w - y_b) / b
    w = np.zeros(D)
    for k in range(STEPS):
        xb, yb = np.asarray(BATCHES[0][k]), np.asarray(BATCHES[1][k])
        w = w - lr * xb.T @ (xb @ w - yb) / B
    np.testing.assert_allclose(mine, w, rtol=1e-12)
    # the same with an optax optimizer, through gradient_descent's batches
    adam = dynamics.descent_step(lsq, optimizer=optax.adam(0.05))
    traj = dynamics.gradient_descent(
        lsq,
        w0,
        optimizer=optax.adam(0.05),
        steps=STEPS,
        batches=BATCHES,
        observables={"w": lambda t, p: p},
    )
    tree_allclose(traj.final, user_loop(adam, w0, BATCHES), rtol=1e-12)
    np.testing.assert_allclose(traj.ts, np.arange(STEPS + 1), rtol=0)  # optimizer: t = k


def centre_energy(p, batch):
    # F(mu) = sum_i w_i |x_i - c|^2 / 2 with the minibatch's centre c: V = |x - c|^2 / 2
    c = jnp.mean(batch[0], axis=0)
    return jnp.sum(p.weights * 0.5 * jnp.sum((p.positions - c[None]) ** 2, axis=1))


def test_conic_step_minibatch_in_user_loop_equals_iterate_and_formula():
    lr, alpha, beta = 0.1, 1.0, 0.5
    p0 = Particles(jnp.full(5, 0.2), jax.random.normal(jax.random.key(1), (5, D)))
    stepper = dynamics.measures.conic_particle_step(centre_energy, lr=lr, alpha=alpha, beta=beta)
    mine = user_loop(stepper, p0, BATCHES)
    run = dynamics.iterate(stepper, p0, steps=STEPS, batches=BATCHES, dt=lr)
    tree_allclose(run.final, mine, rtol=1e-13)
    # the update by hand: w <- w exp(-lr beta V), x <- x - lr alpha (x - c)
    w, x = np.asarray(p0.weights), np.asarray(p0.positions)
    for k in range(STEPS):
        c = np.asarray(BATCHES[0][k]).mean(0)
        v = 0.5 * np.sum((x - c) ** 2, axis=1)
        w, x = w * np.exp(-lr * beta * v), x - lr * alpha * (x - c)
    np.testing.assert_allclose(mine.weights, w, rtol=1e-12)
    np.testing.assert_allclose(mine.positions, x, rtol=1e-12)


def test_langevin_step_minibatch_in_user_loop_equals_iterate():
    lr, temp, m = 0.1, 0.02, 400
    p0 = Particles(jnp.full(m, 1.0 / m), jnp.zeros((m, D)))
    stepper = dynamics.measures.langevin_step(centre_energy, lr=lr, temperature=temp)
    key = jax.random.key(3)
    mine = user_loop(stepper, p0, BATCHES, key=key)
    run = dynamics.iterate(stepper, p0, steps=STEPS, batches=BATCHES, key=key, dt=lr)
    tree_allclose(run.final, mine, rtol=1e-13)
    # mean over particles follows the noise-free recursion m <- m - lr (m - c_k); the noise
    # adds a mean of m particles with per-coordinate variance 2 lr T sum_k (1 - lr)^(2k)
    mean = np.zeros(D)
    for k in range(STEPS):
        mean = mean - lr * (mean - np.asarray(BATCHES[0][k]).mean(0))
    sd = np.sqrt(2 * lr * temp * sum((1 - lr) ** (2 * k) for k in range(STEPS)) / m)
    assert np.all(np.abs(np.asarray(mine.positions.mean(0)) - mean) < 4 * sd)
    with pytest.raises(ValueError, match="^key: expected a PRNG key"):
        stepper.init(p0)


def test_save_spec_shared_with_integrate():
    # GD on s p^2 / 2: loss_k = s (1 - lr s)^(2k) / 2 at the saved steps
    s, lr = 2.0, 0.1

    def loss_at(ks):
        return s * (1 - lr * s) ** (2 * np.asarray(ks)) / 2

    loss = lambda p: 0.5 * s * p**2  # noqa: E731
    long = dynamics.gradient_descent(loss, jnp.ones(()), lr=lr, steps=1000)
    assert long.ts.shape == (101,)  # the default: 101 points, as integrate
    np.testing.assert_allclose(long.ts, np.arange(0, 1001, 10) * lr, rtol=1e-12)
    short = dynamics.gradient_descent(loss, jnp.ones(()), lr=lr, steps=7, n_save=3)
    ks = np.array([0, 4, 7])  # round(7 * [0, 1/2, 1]), half to even
    np.testing.assert_allclose(short.ts, ks * lr, rtol=1e-12)
    np.testing.assert_allclose(short.values["loss"], loss_at(ks), rtol=1e-12)
    every = dynamics.gradient_descent(loss, jnp.ones(()), lr=lr, steps=5)
    np.testing.assert_allclose(every.values["loss"], loss_at(np.arange(6)), rtol=1e-12)
    logs = dynamics.gradient_descent(loss, jnp.ones(()), lr=lr, steps=1000, n_save=7, spacing="log")
    k_log = np.unique(np.round(np.concatenate([[0], np.logspace(-5, 0, 6)]) * 1000))
    np.testing.assert_allclose(logs.ts, k_log * lr, rtol=1e-12)
    np.testing.assert_allclose(logs.values["loss"], loss_at(k_log), rtol=1e-10)
    given = dynamics.gradient_descent(loss, jnp.ones(()), lr=lr, steps=9, save_steps=[2, 3, 8])
    np.testing.assert_allclose(given.values["loss"], loss_at([2, 3, 8]), rtol=1e-12)
    np.testing.assert_allclose(given.final, (1 - lr * s) ** 9, rtol=1e-12)  # ran all 9 steps


def test_inner_failures_are_folded_into_stats():
    # a stepper whose inner solver fails at step 3 only: the run reports it (status 4)
    stepper = dynamics.Stepper(
        init=lambda x, key=None: (x, jnp.zeros((), jnp.int32)),
        step=lambda s, args=None: (0.5 * s[0], s[1] + 1),
        value=lambda s: s[0],
        inner_ok=lambda s: s[1] != 3,
    )
    bad = dynamics.iterate(stepper, jnp.ones(2), steps=5)
    assert not bool(bad.stats.inner_ok) and int(bad.stats.status) == 4
    np.testing.assert_allclose(bad.final, 0.5**5 * np.ones(2), rtol=1e-14)
    good = dynamics.iterate(stepper, jnp.ones(2), steps=2)
    assert bool(good.stats.inner_ok) and bool(good.stats.ok)


def test_args_every_step_equals_a_closure():
    data = (X[:B], Y[:B])
    with_args = dynamics.gradient_descent(lsq, jnp.zeros(D), lr=0.1, steps=10, args=data)
    closed = dynamics.gradient_descent(lambda w: lsq(w, data), jnp.zeros(D), lr=0.1, steps=10)
    tree_allclose(with_args.final, closed.final, rtol=1e-14)
    tree_allclose(with_args.values, closed.values, rtol=1e-14)


def test_bad_input():
    stepper = dynamics.descent_step(lsq, lr=0.1)
    with pytest.raises(ValueError, match="^stepper: expected a flowax.dynamics.Stepper"):
        dynamics.iterate(lambda s: s, jnp.zeros(D), steps=3)
    with pytest.raises(ValueError, match="^batches: pass either args"):
        dynamics.iterate(stepper, jnp.zeros(D), steps=3, args=BATCHES, batches=BATCHES)
    with pytest.raises(ValueError, match="^batches: expected every leaf to have a leading axis"):
        dynamics.iterate(stepper, jnp.zeros(D), steps=3, batches=BATCHES)
    with pytest.raises(ValueError, match="^steps: expected an int >= 1"):
        dynamics.iterate(stepper, jnp.zeros(D), steps=0)
    with pytest.raises(ValueError, match="^steps: expected an int >= 1"):
        dynamics.iterate(stepper, jnp.zeros(D), steps=2.0)
    with pytest.raises(ValueError, match="^dt: expected a finite scalar > 0"):
        dynamics.iterate(stepper, jnp.zeros(D), steps=3, dt=[[0.5]])
    with pytest.raises(ValueError, match="^save_steps: expected a non-empty increasing"):
        dynamics.iterate(stepper, jnp.zeros(D), steps=3, save_steps=[2, 1])
    # NumPy integers are ints (regression: some checks rejected them)
    out = dynamics.iterate(stepper, jnp.zeros(D), steps=np.int64(3), args=(X[:B], Y[:B]))
    assert out.ts.shape == (4,)
