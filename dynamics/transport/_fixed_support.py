"""Doubly regularized (lambda, tau)-barycenters on a fixed support, by damped Sinkhorn.

    mu* = argmin_mu sum_k w_k T_lam(mu, nu_k) + tau H(mu | ref),

with ``T_lam`` the entropic OT of `flowax.dynamics.transport.entropic_ot` (cost ``|x - y|^2 / 2``,
``lam KL(gamma | mu (x) nu)``) and ``H`` the entropy relative to a reference measure on the
support (for a uniform grid this is the Lebesgue entropy up to a constant). ``tau = lam`` is the
classical Sinkhorn (IBP) barycenter, ``tau = lam / 2`` the debiased choice (Chizat,
"Doubly regularized entropic Wasserstein barycenters").

Method: with dual potentials ``v_k`` on the supports of ``nu_k`` and ``b_k = q_k exp(v_k / lam)``
(``q_k`` the masses of ``nu_k``), ``K(x, y) = exp(-c(x, y) / lam)``,

    mu(x) propto ref(x) prod_k (K b_k)(x)^(w_k lam / tau),
    m_k = b_k * K^T (mu / K b_k)               (second marginal of the k-th coupling),
    b_k <- b_k (q_k / m_k)^eta,   eta = min(1, tau / lam),

the damping ``eta`` making it converge for every ``tau > 0`` (Chizat and Vaskevicius 2023,
damped Sinkhorn). Optionally over-relaxed, ``eta <- omega eta`` with ``omega in (0, 2)``
(Thibault, Chizat, Dossal and Papadakis, "Overrelaxed Sinkhorn-Knopp algorithm for regularized
optimal transport", 2021): the same fixed point, locally convergent; ``omega = 1.5`` took 1.5x
fewer iterations on every problem of ``benchmarks/bench_barycenter.py``, but only ``omega = 1``
carries the global guarantee, so it is the default.

Two kernel applications per iteration, done either on scalings (``"kernel"`` mode: matrix
products, fast, but ``K`` may underflow for small ``lam``) or on log-scalings with log-sum-exp
(``"log"`` mode: stable for every ``lam``). On a `TensorGrid` support with the targets
given as histograms on it, ``K`` is the tensor product of the per-axis kernels and is applied
axis by axis: ``O(N sum_a n_a)`` per application instead of ``O(N^2)``. ott-jax has no barycenter
with an outer entropy ``tau``; with ``tau = lam`` this is its (and POT's) Sinkhorn barycenter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ...models import _checks
from ...models._particles import Particles
from ._free_support import check_measures

MODES = ("auto", "kernel", "log")


class TensorGrid(NamedTuple):
    """A tensor-product grid: the points ``(axes[0][i0], axes[1][i1], ...)`` (flowax's own type;
    ott-jax's ``geometry.grid.Grid`` is a geometry with an epsilon, not a support).

    Attributes:
      axes: tuple of 1-D coordinate arrays ``[n_0], ..., [n_{d-1}]``; points are ordered as
        ``jnp.meshgrid(*axes, indexing="ij")`` flattened in C order.
    """

    axes: tuple[jax.Array, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(np.shape(a)[0]) for a in self.axes)

    @property
    def points(self) -> jax.Array:
        """``[N, d]`` the grid points, ``N = prod(shape)``."""
        mesh = jnp.meshgrid(*[jnp.asarray(a) for a in self.axes], indexing="ij")
        return jnp.stack([m.reshape(-1) for m in mesh], axis=-1)


class BarycenterResult(NamedTuple):
    """Result of `barycenter_fixed_support`.

    Attributes:
      histogram: the barycenter's masses on the support (sum 1): ``[N]``, or ``grid.shape`` on
        a `TensorGrid` (the field name of ott-jax's barycenter output).
      potentials: tuple of ``K`` dual potentials ``v_k`` on the targets' supports: ``[n_k]`` for
        `Particles` targets, ``[N]`` (``grid.shape``) for histograms.
      converged: bool, marginal error of ``histogram`` below ``threshold``.
      n_iters: int32, marginal evaluations done (updates done: one fewer).
      errors: ``[max_iterations]`` the marginal error ``sum_k w_k |m_k - q_k|_1`` per
        iteration, ``nan`` where no iteration ran (ott uses -1; a nan cannot be mistaken for an
        error value and is skipped by ``nanmin`` / plots).
    """

    histogram: jax.Array
    potentials: tuple[jax.Array, ...]
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array

    @property
    def ok(self) -> jax.Array:
        """``converged`` (the name `Trajectory.ok` and `raise_if_failed` use)."""
        return self.converged


def _lse_matmul(log_k, log_x):
    """``log(exp(log_k) @ exp(log_x))`` stably, ``[m, n] x [n, c] -> [m, c]``; one column at a
    time keeps the temporary ``[m, n]``, not ``[m, n, c]``."""
    return jax.lax.map(lambda col: logsumexp(log_k + col[None, :], axis=1), log_x.T).T


class _Dense(NamedTuple):
    """``log_k [N, n] = -c(support, targets) / lam`` and ``k = exp(log_k)`` (``None`` in log
    mode); acts on columns ``[n, c]``."""

    log_k: jax.Array
    k: jax.Array | None
    symmetric: bool = False  # then K^T x is computed as K x (a faster layout)

    def apply(self, x, log, transpose=False):
        transpose = transpose and not self.symmetric
        if not log:
            return (self.k.T if transpose else self.k) @ x
        return _lse_matmul(self.log_k.T if transpose else self.log_k, x)


class _Separable(NamedTuple):
    """``K = K_0 (x) K_1 (x) ...`` on a grid, ``log_ks[a] [n_a, n_a]`` and ``ks`` their
    exponentials (``None`` in log mode); acts on columns ``[N, c]``."""

    log_ks: tuple
    ks: tuple | None

    def apply(self, x, log, transpose=False):  # each K_a is symmetric: transpose is a no-op
        shape = tuple(lk.shape[0] for lk in self.log_ks)
        c = x.shape[-1]
        y = x.reshape(*shape, c)
        letters = "abcdefghijklmnopqrstuvwxy"[: len(shape) + 1]
        for a, lk in enumerate(self.log_ks):
            if log:
                y = jnp.moveaxis(y, a, 0)
                rest = y.shape[1:]
                y = _lse_matmul(lk, y.reshape(shape[a], -1)).reshape(shape[a], *rest)
                y = jnp.moveaxis(y, 0, a)
            else:  # contract axis a in place: no transposes in the [*grid, c] layout
                out = letters.replace(letters[a], "z")
                y = jnp.einsum(f"z{letters[a]},{letters}->{out}", self.ks[a], y)
        return y.reshape(-1, c)


def _sq_dist_over_2(x, y):
    return 0.5 * jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, -1)


def _damped_sinkhorn(ops, log_q, wts, log_ref, lam, tau, omega, threshold, max_iterations, log):
    """The iteration of the module docstring. ``ops[j]`` acts on block ``j`` of columns
    ``log_q[j] [n_j, c_j]`` with weights ``wts[j] [c_j]``; in ``log`` mode the state is log b."""
    eta = omega * jnp.minimum(1.0, tau / lam)
    dtype = log_ref.dtype
    q = [jnp.exp(lq) for lq in log_q]

    def marginals(b):
        kb = [op.apply(bj, log) for op, bj in zip(ops, b, strict=True)]  # [N, c_j]
        lkb = kb if log else [jnp.log(k) for k in kb]
        log_mu = log_ref + (lam / tau) * sum(l @ w for l, w in zip(lkb, wts, strict=True))
        log_mu = log_mu - logsumexp(log_mu)
        if log:
            m = [
                bj + op.apply(log_mu[:, None] - k, True, transpose=True)
                for op, bj, k in zip(ops, b, kb, strict=True)
            ]
            m_lin = [jnp.exp(mj) for mj in m]
        else:
            mu = jnp.exp(log_mu)[:, None]
            m = [
                bj * op.apply(jnp.where(k > 0, mu / k, 0.0), False, transpose=True)
                for op, bj, k in zip(ops, b, kb, strict=True)
            ]
            m_lin = m
        err = sum(jnp.abs(mj - qj).sum(0) @ w for mj, qj, w in zip(m_lin, q, wts, strict=True))
        return log_mu, m, jnp.where(jnp.isfinite(err), err, jnp.nan)  # nan stops the loop

    def update(b, m):
        if log:  # points where nu_k has no mass keep their potential (log q = log m = -inf)
            return [
                bj + eta * jnp.where(jnp.isfinite(lq), lq - mj, 0.0)
                for bj, mj, lq in zip(b, m, log_q, strict=True)
            ]
        ratio = [jnp.where(qj > 0, qj / mj, 0.0) for qj, mj in zip(q, m, strict=True)]
        # a power costs a log and an exp per entry (exp(eta log r) is faster than XLA's pow on
        # CPU): skip it for the undamped, unrelaxed step (under vmap over tau the predicate is
        # batched, cond becomes select and both branches run)
        ratio = jax.lax.cond(
            eta == 1,
            lambda: ratio,
            lambda: [jnp.where(r > 0, jnp.exp(eta * jnp.log(r)), 0.0) for r in ratio],
        )
        return [bj * r for bj, r in zip(b, ratio, strict=True)]

    def cond(state):  # false once err is nan: a non-finite run never recovers
        _, _, err, it, _ = state
        return (it < max_iterations) & (err > threshold)

    def body(state):
        b, _, _, it, errs = state
        log_mu, m, err = marginals(b)
        # no update after the last evaluation: the potentials stay those of the weights returned
        more = (err > threshold) & (it + 1 < max_iterations)
        b = jax.lax.cond(more, lambda: update(b, m), lambda: b)
        return b, log_mu, err, it + 1, errs.at[it].set(err)

    b0 = [lq if log else jnp.exp(lq) for lq in log_q]
    state = (
        b0,
        log_ref,
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(0, jnp.int32),
        jnp.full(max_iterations, jnp.nan, dtype),
    )
    b, log_mu, err, it, errs = jax.lax.while_loop(cond, body, state)
    log_b = b if log else [jnp.log(bj) for bj in b]
    v = [
        jnp.where(jnp.isfinite(lq), lam * (lb - lq), 0.0)
        for lb, lq in zip(log_b, log_q, strict=True)
    ]
    return log_mu, v, err, it, errs


def _check_histograms(measures, n, grid_shape):
    h = jnp.asarray(measures)
    allowed = [(n,)] + ([tuple(grid_shape)] if grid_shape is not None else [])
    if h.ndim < 2 or tuple(h.shape[1:]) not in allowed or h.shape[0] == 0:
        want = " or ".join(f"[K, {', '.join(map(str, s))}]" for s in allowed)
        raise ValueError(
            f"measures: expected a list of Particles or histograms on the support of shape "
            f"{want} (K >= 1), got shape {h.shape}"
        )
    h = h.reshape(h.shape[0], n)
    v = _checks.concrete(h)
    if v is not None:
        sums = v.sum(1)
        if not np.isfinite(v).all() or (v < 0).any() or np.abs(sums - 1).max() > 1e-6:
            raise ValueError(
                "measures: expected nonnegative finite histograms each summing to 1, got sums "
                f"off by up to {np.abs(sums - 1).max():.3g}"
            )
    return h


def barycenter_fixed_support(
    support: jax.Array | TensorGrid,
    measures: list[Particles] | jax.Array,
    weights: jax.Array,
    *,
    lam: float | jax.Array,
    tau: float | jax.Array,
    reference: jax.Array | None = None,
    threshold: float = 1e-9,
    max_iterations: int = 5000,
    mode: str = "auto",
    overrelaxation: float = 1.0,
) -> BarycenterResult:
    """The ``(lam, tau)``-barycenter of ``measures`` on a fixed support (module docstring).

    Args:
      support: ``[N, d]`` candidate points, or a `TensorGrid` (then ``N = prod(grid.shape)``).
      measures: either ``K`` `Particles` (positions ``[n_k, d]``, mass 1, any supports), or the
        ``K`` targets as histograms on the support itself, ``[K, N]`` (or ``[K, *grid.shape]``):
        then all targets share one kernel, applied to all of them at once, and separably on a
        `TensorGrid`. Use histograms for images and densities sampled on a grid.
      weights: ``[K]`` nonnegative, summing to 1.
      lam: inner regularization ``> 0``; tau: outer entropy ``> 0``.
      reference: ``[N]`` (or ``grid.shape``) reference masses of ``H`` (default uniform).
      threshold: stop when the marginal error falls below it.
      max_iterations: iteration cap (Python int).
      mode: ``"kernel"`` (scalings and matrix products), ``"log"`` (log-sum-exp, stable for any
        ``lam``), or ``"auto"``: kernel mode, redone in log mode if it produced non-finite
        numbers (under ``vmap`` JAX then evaluates both; pass the mode explicitly there).
      overrelaxation: ``omega in (0, 2)`` multiplying the step (module docstring); 1 is the
        damped Sinkhorn with its convergence guarantee.

    Returns:
      `BarycenterResult`. The iteration is a ``lax.while_loop``: forward-mode differentiable
      only (no reverse mode through it).
    """
    _checks.check_option("mode", mode, MODES)
    _checks.check_positive("threshold", threshold, allow_zero=True)  # 0: max_iterations exactly
    if isinstance(support, TensorGrid):
        for a, ax in enumerate(support.axes):
            if np.ndim(ax) != 1 or np.shape(ax)[0] < 1:
                raise ValueError(
                    f"support.axes[{a}]: expected a non-empty 1-D array, got shape {np.shape(ax)}"
                )
        grid_shape, points = support.shape, support.points
    else:
        _checks.check_array("support", support, ndim=2)
        grid_shape, points = None, jnp.asarray(support)
        if points.ndim != 2 or points.shape[0] == 0:
            raise ValueError(f"support: expected shape [N, d] with N >= 1, got {points.shape}")
    n, d = points.shape
    if isinstance(measures, (list, tuple)):
        check_measures(measures)
        for k, nu in enumerate(measures):
            if np.shape(nu.positions)[1:] != (d,):
                raise ValueError(
                    f"measures[{k}].positions: expected points of dimension {d} like "
                    f"the support, got shape {np.shape(nu.positions)}"
                )
        n_measures = len(measures)
    else:
        _checks.check_array("measures", measures)
        hist = _check_histograms(measures, n, grid_shape)
        n_measures = hist.shape[0]
    _checks.check_simplex("weights", weights, n_measures)
    _checks.check_positive("lam", lam)
    _checks.check_positive("tau", tau)
    max_iterations = _checks.check_positive_int("max_iterations", max_iterations)
    omega = _checks.concrete(overrelaxation)
    if omega is not None and not (omega.size == 1 and 0 < float(omega) < 2):
        raise ValueError(f"overrelaxation: expected a scalar in (0, 2), got {overrelaxation!r}")
    if reference is not None and np.shape(reference) not in ((n,), grid_shape):
        raise ValueError(
            f"reference: expected shape [{n}] like the support, got {np.shape(reference)}"
        )
    weights = jnp.asarray(weights, points.dtype)
    log_ref = (
        jnp.full(n, -math.log(n), points.dtype)
        if reference is None
        else jnp.log(jnp.reshape(reference, n) / jnp.sum(reference))
    )

    def exp(lk):  # kernels only where kernel mode may run
        return None if mode == "log" else jnp.exp(lk)

    if isinstance(measures, (list, tuple)):
        log_ks = [-_sq_dist_over_2(points, nu.positions) / lam for nu in measures]
        ops = [_Dense(lk, exp(lk)) for lk in log_ks]
        log_q = [jnp.log(nu.weights)[:, None] for nu in measures]
        wts = [weights[k : k + 1] for k in range(n_measures)]
    else:
        if grid_shape is not None:
            axes = [jnp.asarray(a, points.dtype)[:, None] for a in support.axes]
            log_ks = tuple(-_sq_dist_over_2(a, a) / lam for a in axes)
            op = _Separable(log_ks, None if mode == "log" else tuple(map(jnp.exp, log_ks)))
        else:
            log_k = -_sq_dist_over_2(points, points) / lam
            op = _Dense(log_k, exp(log_k), symmetric=True)
        ops, log_q, wts = [op], [jnp.log(hist.T.astype(points.dtype))], [weights]

    def run(log):
        return _damped_sinkhorn(
            ops, log_q, wts, log_ref, lam, tau, overrelaxation, threshold, max_iterations, log
        )

    if mode == "auto":
        out = run(False)
        ok = jnp.isfinite(out[2]) & jnp.all(jnp.isfinite(out[0]))
        log_mu, v, err, it, errs = jax.lax.cond(ok, lambda: out, lambda: run(True))
    else:
        log_mu, v, err, it, errs = run(mode == "log")

    mu = jnp.exp(log_mu)
    if isinstance(measures, (list, tuple)):
        potentials = tuple(vk[:, 0] for vk in v)
    else:
        shape = grid_shape if grid_shape is not None and jnp.ndim(measures) > 2 else (n,)
        potentials = tuple(v[0][:, k].reshape(shape) for k in range(n_measures))
    if grid_shape is not None:
        mu = mu.reshape(grid_shape)
    return BarycenterResult(mu, potentials, err <= threshold, it, errs)
