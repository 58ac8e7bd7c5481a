"""Sparse deconvolution: conic particle GD recovers off-grid spikes; a fixed grid cannot."""

import jax
import jax.numpy as jnp
import numpy as np
from flowax import dynamics
from flowax.dynamics.measures import Particles

K, SIGMA, REG = 8, 0.01, 1e-3
SPIKES = np.array([0.2, 0.47, 0.75])
AMPS = np.array([1.0, 0.6, 0.8])


def test_features_orthonormal():
    x = (np.arange(400) + 0.5) / 400
    phi = np.asarray(dynamics.measures.fourier_features(jnp.asarray(x), K))
    np.testing.assert_allclose(phi.T @ phi / 400, np.eye(2 * K + 1), atol=1e-12)


def test_recovers_spikes_and_beats_fixed_grid():
    y = dynamics.measures.fourier_features(jnp.asarray(SPIKES), K).T @ jnp.asarray(AMPS)
    y = y + SIGMA * jax.random.normal(jax.random.key(0), y.shape)
    objective = dynamics.measures.sparse_deconvolution(y, cutoff=K, reg=REG)
    m = 40
    p0 = Particles(jnp.full(m, 0.1 / m), (jnp.arange(m) / m + 0.5 / m)[:, None])
    common = dict(lr=0.1, steps=2000, beta=1.0, n_save=2)
    free = dynamics.measures.conic_particle_gd(
        objective, p0, alpha=1.0 / (2 * np.pi * K) ** 2, **common
    )
    grid = dynamics.measures.conic_particle_gd(objective, p0, alpha=0.0, **common)  # same compute
    x = np.mod(np.asarray(free.final.positions[:, 0]), 1.0)
    w = np.asarray(free.final.weights)
    # Least squares for an isolated spike: |phi(x)|^2 = 2K+1, so the amplitude has noise std
    # SIGMA / sqrt(2K+1) and the position SIGMA / (a |phi'(x)|), |phi'|^2 = 2 sum (2 pi k)^2.
    # Allow 5 std, plus the penalty's shrinkage REG / |phi(x)|^2 on the amplitude.
    amp_tol = 5 * SIGMA / np.sqrt(2 * K + 1) + REG / (2 * K + 1)
    dphi = 2 * np.pi * np.sqrt(2 * np.sum(np.arange(1, K + 1) ** 2))
    for s, a in zip(SPIKES, AMPS, strict=True):
        near = np.abs(x - s) < 0.03
        mass = w[near].sum()
        pos = np.sum(w[near] * x[near]) / mass
        assert abs(mass - a) < amp_tol, (s, mass, a)
        assert abs(pos - s) < 5 * SIGMA / (a * dphi) + 1e-4, (s, pos)
    assert w[(np.abs(x[:, None] - SPIKES[None]) >= 0.03).all(1)].sum() < 0.05
    # the over-parametrization benefit, measured: the fixed grid ends far higher
    f_free = float(free.values["objective"][-1])
    f_grid = float(grid.values["objective"][-1])
    assert f_grid > 5 * f_free, (f_grid, f_free)
