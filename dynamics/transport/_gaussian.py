"""Closed forms for Gaussians (cost ``|x - y|^2 / 2``, ``lam KL(gamma | mu (x) nu)``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks


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
    for name, x, nd in (("mean_a", mean_a, (0, 1)), ("mean_b", mean_b, (0, 1))):
        _checks.check_array(name, x, ndim=nd)
    for name, c in (("cov_a", cov_a), ("cov_b", cov_b)):
        _check_covariance(name, c)
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
    dmat = sqrtm(4 * ra @ cov_b @ ra + s2**2 * jnp.eye(d, dtype=cov_a.dtype))
    ot = (
        jnp.sum((mean_a - mean_b) ** 2)
        + jnp.trace(cov_a)
        + jnp.trace(cov_b)
        - jnp.trace(dmat)
        + d * s2 * (1 - jnp.log(2 * s2))
        + s2 * jnp.linalg.slogdet(dmat + s2 * jnp.eye(d, dtype=cov_a.dtype))[1]
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
      iterations: bisection steps (each halves the bracket ``[0, hi]``).
      means: ``[K, d]``; variances: ``[K]`` (the ``s_k^2``); weights: ``[K]`` summing to 1.
      lam: ``>= 0``; tau: ``> 0``.

    Returns:
      ``(mean [d], variance)``.
    """
    _checks.check_array("means", means, ndim=2)
    v = _checks.check_array("variances", variances, ndim=1)
    if v is not None and np.any(v <= 0):
        raise ValueError(f"variances: expected positive values, got min {v.min()}")
    _checks.check_array("weights", weights, ndim=1)
    means, variances, weights = jnp.asarray(means), jnp.asarray(variances), jnp.asarray(weights)
    iterations = _checks.check_positive_int("iterations", iterations)
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

    # h(0) = -2 tau < 0; with s^2 = max_k s_k^2, sqrt(lam^2 + 4 s^2 x) <= lam + 2 s sqrt(x), so
    # h(x) >= 2x - 2 tau - 2 s sqrt(x) > 0 at x = hi: a root lies in (0, hi)
    hi = 2 * tau + 4 * jnp.max(variances) + lam + 1.0

    def body(_, bounds):
        lo, up = bounds
        mid = 0.5 * (lo + up)
        neg = h(mid) < 0
        return jnp.where(neg, mid, lo), jnp.where(neg, up, mid)

    lo, up = jax.lax.fori_loop(0, iterations, body, (jnp.zeros_like(hi), hi))
    return weights @ means, 0.5 * (lo + up)


def _check_covariance(name, c):
    """A covariance ``[d, d]`` (or a scalar variance): symmetric positive semi-definite when
    concrete (to a dtype-aware tolerance)."""
    v = _checks.check_array(name, c, ndim=(0, 2))
    if v is None:
        return
    v = np.atleast_2d(v)
    if v.shape[0] != v.shape[1]:
        raise ValueError(f"{name}: expected a square matrix [d, d], got shape {v.shape}")
    scale = max(float(np.abs(v).max()), 1.0)
    tol = 100 * float(np.finfo(np.result_type(v.dtype, np.float32)).eps) * scale
    if np.abs(v - v.T).max() > tol:
        raise ValueError(
            f"{name}: expected a symmetric matrix, got max |C - C^T| = {np.abs(v - v.T).max():.3g}"
        )
    low = float(np.linalg.eigvalsh(v.astype(np.float64)).min())
    if low < -tol:
        raise ValueError(
            f"{name}: expected a positive semi-definite matrix, got eigenvalue {low:.3g}"
        )
