"""Entropic optimal transport between particle measures, through ott-jax.

Convention (Chizat, "Doubly regularized entropic Wasserstein barycenters"): cost
``c(x, y) = |x - y|^2 / 2`` and

    T_lam(mu, nu) = min_{gamma in Pi(mu, nu)} int c dgamma + lam KL(gamma | mu (x) nu).

ott-jax's ``PointCloud`` uses ``|x - y|^2``; with ``scale_cost=2.0`` it is ``c`` above, and its
``reg_ot_cost`` is ``<P, C> + eps KL(P | a b^T)``, so ``eps = lam`` gives ``T_lam`` exactly. The
solving (log-domain Sinkhorn, implicit differentiation) is ott-jax's; flowax never re-implements
it and never uses ott's data-dependent default epsilon.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .langevin import noisy_particle_step, run_noisy_particles
from .particles import Particles, check_particles


class TransportResult(NamedTuple):
    """Result of `entropic_ot`.

    Attributes:
      cost: ``T_lam(mu, nu)``, a scalar.
      plan: ``[m, n]`` the optimal coupling ``gamma``.
      potentials: ``(f [m], g [n])``, ``gamma_ij = a_i b_j exp((f_i + g_j - c_ij) / lam)``.
      converged: bool, whether Sinkhorn met its threshold.
      n_iters: int, Sinkhorn iterations.
    """

    cost: jax.Array
    plan: jax.Array
    potentials: tuple[jax.Array, jax.Array]
    converged: jax.Array
    n_iters: jax.Array


def _flat(p: Particles) -> jax.Array:
    return jnp.reshape(p.positions, (p.positions.shape[0], -1))


def _check_pair(mu: Particles, nu: Particles, lam: Any) -> None:
    check_particles(mu, "mu")
    check_particles(nu, "nu")
    d_mu, d_nu = np.shape(mu.positions)[1:], np.shape(nu.positions)[1:]
    if d_mu != d_nu:
        raise ValueError(f"nu.positions: expected points of shape {d_mu} like mu's, got {d_nu}")
    _checks.check_positive("lam", lam)
    a, b = _checks.concrete(mu.weights), _checks.concrete(nu.weights)
    if a is not None and b is not None and abs(a.sum() - b.sum()) > 1e-6 * max(a.sum(), 1):
        raise ValueError(
            f"nu.weights: balanced transport needs equal masses, got mu {a.sum():.6g} and "
            f"nu {b.sum():.6g} (differ by {abs(a.sum() - b.sum()):.3g})"
        )


def entropic_ot(
    mu: Particles,
    nu: Particles,
    *,
    lam: float | jax.Array,
    threshold: float = 1e-6,
    max_iterations: int = 5000,
    **solver_options: Any,
) -> TransportResult:
    """Entropic OT ``T_lam(mu, nu)`` with cost ``|x - y|^2 / 2`` (module docstring), by ott-jax.

    Args:
      mu, nu: `Particles` of equal total mass with positions ``[m, ...]``, ``[n, ...]`` of the
        same trailing shape (flattened to vectors).
      lam: entropic regularization ``lam > 0``.
      threshold, max_iterations, **solver_options: passed to ``ott.solvers.linear.sinkhorn.
        Sinkhorn`` (log domain by default).

    Returns:
      `TransportResult`; differentiable in positions and weights (ott's implicit
      differentiation).

    Raises:
      ValueError: malformed measures, points of different dimensions, unequal masses,
        ``lam <= 0``.
    """
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    _check_pair(mu, nu, lam)
    # ott-jax relies on implicit rank promotion; keep a user's strict setting out of it
    with jax.numpy_rank_promotion("allow"):
        geom = pointcloud.PointCloud(_flat(mu), _flat(nu), epsilon=lam, scale_cost=2.0)
        prob = linear_problem.LinearProblem(geom, a=mu.weights, b=nu.weights)
        solver = sinkhorn.Sinkhorn(
            threshold=threshold, max_iterations=max_iterations, **solver_options
        )
        out = solver(prob)
    return TransportResult(out.reg_ot_cost, out.matrix, (out.f, out.g), out.converged, out.n_iters)


def sinkhorn_divergence(mu: Particles, nu: Particles, *, lam: float | jax.Array, **options: Any):
    """``S_lam(mu, nu) = T_lam(mu, nu) - T_lam(mu, mu)/2 - T_lam(nu, nu)/2`` (Genevay et al. 2018;
    Feydy et al. 2019): nonnegative, zero iff ``mu = nu``, differentiable in positions and
    weights, so usable as an observable of a flow or as an objective of the measure flows."""
    xy = entropic_ot(mu, nu, lam=lam, **options).cost
    xx = entropic_ot(mu, mu, lam=lam, **options).cost
    yy = entropic_ot(nu, nu, lam=lam, **options).cost
    return xy - 0.5 * (xx + yy)


def barycentric_projection(mu: Particles, nu: Particles, *, lam: float | jax.Array, **options):
    """The entropic map ``T(x_i) = E_gamma[Y | X = x_i] = sum_j gamma_ij y_j / sum_j gamma_ij``.

    Returns:
      ``[m, ...]`` the image of each particle of ``mu``.
    """
    plan = entropic_ot(mu, nu, lam=lam, **options).plan
    mapped = plan @ _flat(nu) / jnp.sum(plan, axis=1, keepdims=True)
    return jnp.reshape(mapped, mu.positions.shape)


def gaussian_entropic_ot(mean_a, cov_a, mean_b, cov_b, *, lam):
    """Closed form of ``T_lam`` between ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``.

    With ``OT_eps`` the entropic OT for cost ``|x - y|^2`` and ``eps KL(gamma | alpha (x) beta)``
    and ``s^2 = eps / 2``, ``D = (4 A^{1/2} B A^{1/2} + s^4 I)^{1/2}``:
    ``OT_eps = |a - b|^2 + Tr A + Tr B - Tr D + d s^2 (1 - log(2 s^2)) + s^2 log det(D + s^2 I)``
    (Janati et al. 2020; Mallasto et al. 2021), and ``T_lam = OT_{2 lam} / 2``.

    Args:
      mean_a, mean_b: ``[d]``; cov_a, cov_b: ``[d, d]`` symmetric positive definite.
    """
    _checks.check_positive("lam", lam)
    mean_a, mean_b = jnp.atleast_1d(mean_a), jnp.atleast_1d(mean_b)
    cov_a, cov_b = jnp.atleast_2d(cov_a), jnp.atleast_2d(cov_b)
    d = mean_a.shape[0]
    for name, shape, want in (
        ("mean_b", mean_b.shape, (d,)),
        ("cov_a", cov_a.shape, (d, d)),
        ("cov_b", cov_b.shape, (d, d)),
    ):
        if shape != want:
            raise ValueError(f"{name}: expected shape {want} to match mean_a, got {shape}")
    s2 = lam  # eps = 2 lam, s^2 = eps / 2

    def sqrtm(m):
        vals, vecs = jnp.linalg.eigh(m)
        return (vecs * jnp.sqrt(jnp.maximum(vals, 0))[None, :]) @ vecs.T

    ra = sqrtm(cov_a)
    dmat = sqrtm(4 * ra @ cov_b @ ra + s2**2 * jnp.eye(d))
    ot = (
        jnp.sum((mean_a - mean_b) ** 2)
        + jnp.trace(cov_a)
        + jnp.trace(cov_b)
        - jnp.trace(dmat)
        + d * s2 * (1 - jnp.log(2 * s2))
        + s2 * jnp.linalg.slogdet(dmat + s2 * jnp.eye(d))[1]
    )
    return ot / 2


def gaussian_barycenter(means, variances, weights, *, lam, tau, iterations: int = 200):
    """The ``(lam, tau)``-barycenter of isotropic Gaussians ``N(m_k, s_k^2 I)`` in closed form.

    argmin_mu sum_k w_k T_lam(mu, nu_k) + tau H(mu) is ``N(sum_k w_k m_k, x I)`` with ``x`` the
    unique positive root of ``2x + lam - 2 tau = sum_k w_k sqrt(lam^2 + 4 s_k^2 x)`` (tau > 0;
    Chizat, "Doubly regularized entropic Wasserstein barycenters"), found by bisection. For equal
    variances ``a``: ``x = [(a + sqrt((a - lam)^2 + 4 a tau))^2 - lam^2] / (4a)``; ``tau = lam``
    gives ``a + lam``, ``tau = lam / 2`` gives ``(a + sqrt(a^2 + lam^2)) / 2``.

    Args:
      means: ``[K, d]``; variances: ``[K]`` (the ``s_k^2``); weights: ``[K]`` summing to 1.
      lam: ``>= 0``; tau: ``> 0``.

    Returns:
      ``(mean [d], variance)``.
    """
    means, variances, weights = jnp.asarray(means), jnp.asarray(variances), jnp.asarray(weights)
    _checks.check_positive("tau", tau)
    _checks.check_positive("lam", lam, allow_zero=True)
    k = np.shape(means)[0] if np.ndim(means) == 2 else -1
    if k < 1 or np.shape(variances) != (k,):
        raise ValueError(
            f"variances: expected means [K, d] and variances [K], got shapes {np.shape(means)} "
            f"and {np.shape(variances)}"
        )
    _checks.check_simplex("weights", weights, k)

    def h(x):
        return 2 * x + lam - 2 * tau - jnp.sum(weights * jnp.sqrt(lam**2 + 4 * variances * x))

    # h(0) = -2 tau < 0 and h(x) >= 2x - 2 tau - 2 sqrt(max s^2 x) - ... : a root below hi
    hi = 2 * tau + 4 * jnp.max(variances) + lam + 1.0

    def body(_, bounds):
        lo, up = bounds
        mid = 0.5 * (lo + up)
        neg = h(mid) < 0
        return jnp.where(neg, mid, lo), jnp.where(neg, up, mid)

    lo, up = jax.lax.fori_loop(0, iterations, body, (jnp.zeros_like(hi), hi))
    return weights @ means, 0.5 * (lo + up)


def barycenter_particles(
    measures: list[Particles],
    weights: jax.Array,
    *,
    lam: float | jax.Array,
    tau: float | jax.Array,
    n_particles: int,
    key: jax.Array,
    lr: float | jax.Array,
    steps: int,
    init: jax.Array | None = None,
    save_every: int = 1,
    observables: dict | None = None,
    **ot_options: Any,
):
    """Free-support ``(lam, tau)``-barycenter by noisy particle gradient descent.

    ``X <- X - lr sum_k w_k (X - T_k(X)) + sqrt(2 tau lr) xi``, with ``T_k`` the entropic
    barycentric projection (`barycentric_projection`) of the uniform measure on ``X`` onto
    ``nu_k``: the Euler-Maruyama scheme of the mean-field Langevin dynamics of
    ``sum_k w_k T_lam(mu, nu_k) + tau H(mu)`` (Chizat, "Doubly regularized entropic Wasserstein
    barycenters"). Runs through the shared scan loop `iterate`, so it sweeps over
    ``(lam, tau)`` with `sweep`.

    Args:
      measures: ``K`` target `Particles` with positions ``[n_k, d]`` (mass 1 each).
      weights: ``[K]`` nonnegative, summing to 1.
      lam: ``> 0``; tau: ``>= 0`` (0: no noise, the inner-only barycenter).
      n_particles: number of particles of the barycenter.
      key: PRNG key (initial positions when ``init`` is None, then the noise).
      lr, steps, save_every, observables: the scan loop (`iterate`); default observable: the
        particles' variance per coordinate.
      init: ``[n_particles, d]`` initial positions; default standard normal draws around the
        weighted mean of the measures.

    Returns:
      `Trajectory` whose ``final`` is the barycenter's `Particles` (uniform weights).
    """
    if len(measures) == 0:
        raise ValueError("measures: expected at least one measure, got none")
    for k, nu in enumerate(measures):
        check_particles(nu, f"measures[{k}]")
    dims = {np.shape(nu.positions)[1:] for nu in measures}
    if len(dims) != 1:
        raise ValueError(f"measures: expected points of one shape, got {sorted(dims)}")
    _checks.check_simplex("weights", weights, len(measures))
    _checks.check_positive("lam", lam)
    _checks.check_positive("tau", tau, allow_zero=True)
    _checks.check_positive_int("n_particles", n_particles)
    (d_shape,) = dims
    key, k0 = jax.random.split(key)
    if init is None:
        center = sum(
            wk * jnp.mean(nu.positions, axis=0) for wk, nu in zip(weights, measures, strict=True)
        )
        init = center[None] + jax.random.normal(k0, (n_particles,) + d_shape)
    uniform = jnp.full(n_particles, 1.0 / n_particles, init.dtype)

    def drift(mu):
        return sum(
            wk * (mu.positions - barycentric_projection(mu, nu, lam=lam, **ot_options))
            for wk, nu in zip(weights, measures, strict=True)
        )

    if observables is None:
        observables = {"variance": lambda t, p: jnp.var(p.positions, axis=0)}
    return run_noisy_particles(
        noisy_particle_step(drift, lr=lr, temperature=tau),
        Particles(uniform, init),
        key=key,
        lr=lr,
        steps=steps,
        save_every=save_every,
        observables=observables,
    )
