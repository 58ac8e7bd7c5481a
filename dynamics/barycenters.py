"""Doubly regularized (lambda, tau)-barycenters on a fixed support, by damped Sinkhorn.

    mu* = argmin_mu sum_k w_k T_lam(mu, nu_k) + tau H(mu | ref),

with ``T_lam`` the entropic OT of `flowax.dynamics.entropic_ot` (cost ``|x - y|^2 / 2``,
``lam KL(gamma | mu (x) nu)``) and ``H`` the entropy relative to a reference measure on the
support (for a uniform grid this is the Lebesgue entropy up to a constant). ``tau = lam`` is the
classical Sinkhorn (IBP) barycenter, ``tau = lam / 2`` the debiased choice (Chizat,
"Doubly regularized entropic Wasserstein barycenters").

Method (log domain): with dual potentials ``v_k`` on the supports of ``nu_k``,
``u_k(x) = -lam log sum_y q_k(y) exp((v_k(y) - c(x, y)) / lam)`` and
``mu(x) propto ref(x) exp(-sum_k w_k u_k(x) / tau)``; each iteration moves
``v_k <- v_k - eta lam log(m_k / q_k)``, ``m_k`` the second marginal of the coupling, with the
damping ``eta = min(1, tau / lam)`` that makes it converge for every ``tau > 0`` (Chizat and
Vaskevicius 2023, damped Sinkhorn). ott-jax has no barycenter with an outer entropy ``tau``;
with ``tau = lam`` this is its (and POT's) Sinkhorn barycenter.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from . import _checks
from .particles import Particles, check_particles


class BarycenterResult(NamedTuple):
    """Result of `barycenter_fixed_support`.

    Attributes:
      weights: ``[N]`` the barycenter's masses on the support (sum 1).
      potentials: ``[v_1 [n_1], ..., v_K [n_K]]`` dual potentials on the targets' supports.
      converged: bool, marginal error below ``threshold``.
      n_iters: int32, iterations done.
      errors: ``[max_iterations]`` the marginal error ``sum_k w_k |m_k - q_k|_1`` per
        iteration (``nan`` after the last one).
    """

    weights: jax.Array
    potentials: list
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array


def barycenter_fixed_support(
    support: jax.Array,
    measures: list[Particles],
    weights: jax.Array,
    *,
    lam: float | jax.Array,
    tau: float | jax.Array,
    reference: jax.Array | None = None,
    threshold: float = 1e-9,
    max_iterations: int = 5000,
) -> BarycenterResult:
    """The ``(lam, tau)``-barycenter of ``measures`` on the points ``support`` (module docstring).

    Args:
      support: ``[N, d]`` candidate points (e.g. a grid).
      measures: ``K`` `Particles` with positions ``[n_k, d]`` and mass 1.
      weights: ``[K]`` nonnegative, summing to 1.
      lam: inner regularization ``> 0``; tau: outer entropy ``> 0``.
      reference: ``[N]`` reference masses of ``H`` (default uniform).
      threshold: stop when the marginal error falls below it.
      max_iterations: iteration cap (Python int).

    Returns:
      `BarycenterResult`.
    """
    support = jnp.asarray(support)
    if support.ndim != 2:
        raise ValueError(f"support: expected shape [N, d], got {support.shape}")
    if len(measures) == 0:
        raise ValueError("measures: expected at least one measure, got none")
    for k, nu in enumerate(measures):
        check_particles(nu, f"measures[{k}]")
        if np.shape(nu.positions)[1:] != (support.shape[1],):
            raise ValueError(
                f"measures[{k}].positions: expected points of dimension {support.shape[1]} like "
                f"the support, got shape {np.shape(nu.positions)}"
            )
    _checks.check_simplex("weights", weights, len(measures))
    _checks.check_positive("lam", lam)
    _checks.check_positive("tau", tau)
    _checks.check_positive_int("max_iterations", max_iterations)
    n = support.shape[0]
    log_ref = (
        jnp.full(n, -jnp.log(n), support.dtype)
        if reference is None
        else jnp.log(reference / jnp.sum(reference))
    )
    log_q = [jnp.log(nu.weights) for nu in measures]
    log_k = [
        -0.5 * jnp.sum((support[:, None, :] - nu.positions[None, :, :]) ** 2, -1) / lam
        for nu in measures
    ]
    eta = jnp.minimum(1.0, tau / lam)

    def marginals(v):
        u = [
            -lam * logsumexp(lq[None, :] + vk[None, :] / lam + lk, axis=1)
            for lq, vk, lk in zip(log_q, v, log_k, strict=True)
        ]
        log_mu = log_ref - sum(wk * uk for wk, uk in zip(weights, u, strict=True)) / tau
        log_mu = log_mu - logsumexp(log_mu)
        log_m = [
            lq + vk / lam + logsumexp(log_mu[:, None] + uk[:, None] / lam + lk, axis=0)
            for lq, vk, uk, lk in zip(log_q, v, u, log_k, strict=True)
        ]
        return log_mu, log_m

    def error(log_m):
        return sum(
            wk * jnp.sum(jnp.abs(jnp.exp(lm) - jnp.exp(lq)))
            for wk, lm, lq in zip(weights, log_m, log_q, strict=True)
        )

    def cond(state):
        _, it, err, _ = state
        return (it < max_iterations) & (err > threshold)

    def body(state):
        v, it, _, errs = state
        _, log_m = marginals(v)
        # points where nu_k has no mass keep their potential (log m_k = log q_k = -inf there)
        v = [
            vk - eta * lam * jnp.where(jnp.isfinite(lq), lm - lq, 0.0)
            for vk, lm, lq in zip(v, log_m, log_q, strict=True)
        ]
        err = error(marginals(v)[1])
        return v, it + 1, err, errs.at[it].set(err)

    v0 = [jnp.zeros_like(lq) for lq in log_q]
    err0 = error(marginals(v0)[1])
    errs0 = jnp.full(max_iterations, jnp.nan, support.dtype)
    v, it, err, errs = jax.lax.while_loop(cond, body, (v0, jnp.asarray(0, jnp.int32), err0, errs0))
    log_mu, _ = marginals(v)
    return BarycenterResult(jnp.exp(log_mu), v, err <= threshold, it, errs)
