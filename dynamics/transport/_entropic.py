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

from ...models import _checks
from ...models._particles import Particles, check_particles


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

    @property
    def ok(self) -> jax.Array:
        """``converged`` (the name `Trajectory.ok` and `raise_if_failed` use)."""
        return self.converged


def _flat(p: Particles) -> jax.Array:
    return jnp.reshape(p.positions, (p.positions.shape[0], -1))


def check_cloud(p: Particles, name: str) -> None:
    """A measure whose positions are a point cloud ``[m, d]`` (what ott's geometries take)."""
    check_particles(p, name)
    if np.ndim(p.positions) != 2:
        raise ValueError(
            f"{name}.positions: expected a point cloud of shape [m, d], got {np.shape(p.positions)}"
        )


def _check_pair(mu: Particles, nu: Particles, lam: Any) -> None:
    check_cloud(mu, "mu")
    check_cloud(nu, "nu")
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

    Examples:
      >>> mu = Particles(jnp.full(3, 1 / 3), jnp.array([[0.0], [1.0], [2.0]]))
      >>> out = entropic_ot(mu, mu._replace(positions=mu.positions + 1.0), lam=0.1)
      >>> print(f"{out.cost:.3f}", bool(out.converged))  # a shift by 1: 1/2, plus entropy
      0.609 True

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
    _checks.check_positive("threshold", threshold, allow_zero=True)
    max_iterations = _checks.check_positive_int("max_iterations", max_iterations)
    # ott-jax relies on implicit rank promotion; keep a user's strict setting out of it
    with jax.numpy_rank_promotion("allow"):
        geom = pointcloud.PointCloud(_flat(mu), _flat(nu), epsilon=lam, scale_cost=2.0)
        prob = linear_problem.LinearProblem(geom, a=mu.weights, b=nu.weights)
        solver = sinkhorn.Sinkhorn(
            threshold=threshold, max_iterations=max_iterations, **solver_options
        )
        out = solver(prob)
    return TransportResult(out.reg_ot_cost, out.matrix, (out.f, out.g), out.converged, out.n_iters)


def sinkhorn_divergence(
    mu: Particles,
    nu: Particles,
    *,
    lam: float | jax.Array,
    threshold: float = 1e-6,
    max_iterations: int = 5000,
    static_nu: bool = False,
):
    """``S_lam(mu, nu) = T_lam(mu, nu) - T_lam(mu, mu)/2 - T_lam(nu, nu)/2`` (Genevay et al. 2018;
    Feydy et al. 2019): nonnegative, zero iff ``mu = nu``, differentiable in positions and
    weights, so usable as an observable of a flow or (its value) as an objective.

    Computed by ott-jax's ``sinkdiv`` (symmetric Sinkhorn updates for the ``mu, mu`` and
    ``nu, nu`` terms) with flowax's cost ``|x - y|^2 / 2`` and ``epsilon = lam``.

    Args:
      mu, nu: `Particles` of equal total mass, points of the same shape.
      lam: entropic regularization ``> 0``.
      threshold, max_iterations: of each of the three Sinkhorn solves.
      static_nu: skip the ``nu, nu`` term (a constant when only ``mu`` moves, e.g. a flow
        towards a fixed target); the value is then ``S + T_lam(nu, nu) / 2``.

    Returns:
      ``(value, out)``: the divergence and ott's ``SinkhornDivergenceOutput``, whose
      ``converged`` holds one flag per solve (`flowax.dynamics.raise_if_failed` reads it). As
      an objective: ``lambda p: sinkhorn_divergence(p, nu, lam=lam)[0]``.
    """
    from ott.tools import sinkhorn_divergence as sd

    _check_pair(mu, nu, lam)
    _checks.check_positive("threshold", threshold, allow_zero=True)
    max_iterations = _checks.check_positive_int("max_iterations", max_iterations)
    with jax.numpy_rank_promotion("allow"):
        return sd.sinkdiv(
            _flat(mu),
            _flat(nu),
            epsilon=lam,
            scale_cost=2.0,
            a=mu.weights,
            b=nu.weights,
            static_b=static_nu,
            solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
        )


def barycentric_projection(
    mu: Particles, nu: Particles, *, lam: float | jax.Array, **options: Any
) -> tuple[jax.Array, TransportResult]:
    """The entropic map ``T(x_i) = E_gamma[Y | X = x_i] = sum_j gamma_ij y_j / sum_j gamma_ij``.

    Args:
      mu, nu, lam, **options: as in `entropic_ot`.

    Returns:
      ``(image [m, ...], result)``: the image of each particle of ``mu`` and the `TransportResult`
      of the solve (``result.converged`` says whether the map can be trusted).
    """
    out = entropic_ot(mu, nu, lam=lam, **options)
    mapped = out.plan @ _flat(nu) / jnp.sum(out.plan, axis=1, keepdims=True)
    return jnp.reshape(mapped, mu.positions.shape), out
