"""Curvature of a loss landscape, matrix-free: Hessian- and Gauss-Newton-vector products,
extreme eigenpairs by Lanczos (sharpness), spectral densities by stochastic Lanczos quadrature,
and the Hessian trace by Hutchinson / Hutch++.

Every routine works on a linear operator ``v -> A v`` over a pytree (the Hessian of a loss by
default, or any ``operator=``: a Gauss-Newton product, an NTK Gram matrix), never forming ``A``.

Lanczos (Lanczos 1950; Golub and Van Loan, "Matrix Computations", 10.1) builds an orthonormal
basis ``Q_m`` of the Krylov space of ``A`` and ``q_0`` and the tridiagonal ``T_m = Q_m^T A Q_m``;
the eigenpairs of ``T_m`` (Ritz pairs) approximate the extreme eigenpairs of ``A``. Here every
new vector is orthogonalized against all previous ones, twice ("twice is enough", Parlett), so
no spurious copies of converged eigenvalues ("ghosts") appear, in float32 as in float64; the
scalars of ``T_m`` are kept in the dtype of the parameters (float64 when x64 is on). When the
Krylov space is exhausted (an invariant subspace, e.g. a low-rank operator) the next vector is a
fresh random one orthogonal to the basis, with a zero coupling, so the Ritz values stay exact.

Stochastic Lanczos quadrature (Golub and Meurant 1994; Ubaru, Chen and Saad 2017; Ghorbani,
Krishnan and Xiao 2019, "An investigation into neural net optimization via Hessian eigenvalue
density"): for a unit probe ``v``, the Ritz values ``theta_i`` of ``m`` Lanczos steps from ``v``
and the weights ``tau_i = (e_1^T s_i)^2`` are the Gauss quadrature of the spectral measure
``sum_j (v^T u_j)^2 delta_{lambda_j}``: ``v^T A^j v = sum_i tau_i theta_i^j`` exactly for
``j <= 2m - 1``. Averaged over random probes it estimates the spectral density of ``A``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..models import _checks
from ._lanczos import lanczos, start_vector, tridiag

PyTree = Any
WHICH = ("largest", "smallest")
TRACE_METHODS = ("hutchinson", "hutch++")
GN_LOSSES = ("mse", "cross_entropy")


def hvp(loss: Callable[..., jax.Array], params: PyTree, v: PyTree, *args: Any) -> PyTree:
    """The Hessian-vector product ``H v`` of a scalar ``loss(params, *args)`` at ``params``.

    Forward-over-reverse (``jax.jvp`` of ``jax.grad``): one forward and one backward pass,
    about the cost of two to three gradients; ``v`` is a pytree like ``params``.

    Raises:
      ValueError: ``v``'s structure or shapes differ from ``params``'.
    """
    _checks.check_callable("loss", loss)
    _checks.check_finite_tree("params", params)
    _check_like("v", v, params)
    _checks.check_finite_tree("v", v)
    return jax.jvp(lambda p: jax.grad(loss)(p, *args), (params,), (v,))[1]


def gnvp(apply: Callable, params: PyTree, x: jax.Array, v: PyTree, *, loss: str = "mse") -> PyTree:
    """The Gauss-Newton product ``G v = J^T H_out J v`` of the loss of ``apply(params, x)``.

    ``J`` is the Jacobian of the outputs ``[n, ...]`` in the parameters and ``H_out`` the Hessian
    of the loss in the outputs: ``"mse"``, ``L = (1/n) sum_i |f_i - y_i|^2`` (``H_out = (2/n)
    I``), or ``"cross_entropy"`` over the last axis (``H_out = (1/n) (diag(p) - p p^T)`` per
    example, ``p = softmax(f)``). One JVP and one VJP of the model: the Jacobian is never formed.
    At an interpolating minimizer of the MSE, ``G`` is the Hessian.
    """
    _checks.check_option("loss", loss, GN_LOSSES)
    _checks.check_callable("apply", apply)
    _checks.check_finite_tree("params", params)
    _checks.check_array("x", x, ndim=tuple(range(1, 8)))
    _check_like("v", v, params)
    _checks.check_finite_tree("v", v)
    f, jv = jax.jvp(lambda p: apply(p, x), (params,), (v,))
    n = f.shape[0]
    if loss == "mse":
        u = (2.0 / n) * jv
    else:
        p = jax.nn.softmax(f, axis=-1)
        u = (p * jv - p * jnp.sum(p * jv, axis=-1, keepdims=True)) / n
    _, vjp = jax.vjp(lambda p: apply(p, x), params)
    return vjp(u)[0]


class Eigen(NamedTuple):
    """Extreme eigenpairs of a symmetric operator.

    Attributes:
      values: ``[k]`` eigenvalues (descending for ``"largest"``, ascending for ``"smallest"``).
      vectors: pytree like ``params`` with a leading ``k`` axis, unit norm.
      residuals: ``[k]`` ``|A y - theta y|`` of each pair (computed with ``k`` extra products).
      num_matvecs: int32, operator products used.
      converged: bool, every residual ``<= tol * max(|theta|, tiny)``.
    """

    values: jax.Array
    vectors: PyTree
    residuals: jax.Array
    num_matvecs: jax.Array
    converged: jax.Array

    @property
    def ok(self) -> jax.Array:
        return self.converged


def _check_like(name, v, params):
    tv, tp = jax.tree_util.tree_structure(v), jax.tree_util.tree_structure(params)
    if tv != tp:
        raise ValueError(f"{name}: expected a pytree of structure {tp} like params, got {tv}")
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(params), strict=True):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"{name}: expected leaves of the shapes of params, got {np.shape(a)} for "
                f"{np.shape(b)}"
            )


def _flat_operator(loss, params, operator, args):
    """``(matvec on flat vectors, unravel, n, dtype)`` for the Hessian or a given operator."""
    _checks.check_finite_tree("params", params)
    flat, unravel = ravel_pytree(params)
    if operator is None:
        _checks.check_callable("loss", loss)
        _checks.check_scalar_fn("loss", lambda p: loss(p, *args), params, call="loss(params)")

        def mv(x):
            return ravel_pytree(hvp(loss, params, unravel(x), *args))[0]

    else:
        _checks.check_callable("operator", operator)
        out = _checks.trace_fn("operator", operator, params, call="operator(v)")
        _check_like("operator", out, params)

        def mv(x):
            return ravel_pytree(operator(unravel(x)))[0]

    dtype = jnp.result_type(flat.dtype, float)
    return mv, unravel, flat.shape[0], dtype


def top_eigenpairs(
    loss: Callable[..., jax.Array] | None,
    params: PyTree,
    *args: Any,
    k: int = 1,
    num_iters: int = 20,
    key: jax.Array,
    which: str = "largest",
    tol: float = 1e-3,
    v0: PyTree | None = None,
    operator: Callable[[PyTree], PyTree] | None = None,
) -> Eigen:
    """The ``k`` largest (algebraic) or smallest eigenpairs of the Hessian of ``loss`` at
    ``params`` (or of ``operator``), by ``num_iters`` Lanczos steps (module docstring).

    ``"largest"`` is the largest *algebraic* eigenvalue (what the sharpness is), not the largest
    magnitude that power iteration returns.

    Args:
      loss: ``loss(params, *args) -> scalar`` (ignored when ``operator`` is given: pass None).
      params: the point, any pytree (the operator acts on pytrees like it).
      k: number of eigenpairs, ``1 <= k <= num_iters``.
      num_iters: Lanczos steps ``m`` (``k <= m``; at most the dimension is useful).
      key: PRNG key of the start vector (and of restarts after a breakdown).
      which: ``"largest"`` or ``"smallest"``.
      tol: relative residual below which a pair counts as converged.
      v0: start vector (pytree like ``params``), e.g. the previous top eigenvector (a warm
        start along training); default a Gaussian draw from ``key``.
      operator: ``v -> A v`` on pytrees like ``params`` (a symmetric operator), instead of the
        Hessian.

    Returns:
      `Eigen`.

    Raises:
      ValueError: ``k < 1``, ``num_iters < k``, ``k`` larger than the dimension, an unknown
        ``which``, a loss that does not return a scalar, ``v0`` unlike ``params``.
    """
    k = _checks.check_positive_int("k", k)
    num_iters = _checks.check_positive_int("num_iters", num_iters)
    _checks.check_option("which", which, WHICH)
    _checks.check_positive("tol", tol)
    _checks.check_key("key", key)
    if v0 is not None:
        _check_like("v0", v0, params)
    mv, unravel, n, dtype = _flat_operator(loss, params, operator, args)
    if k > n:
        raise ValueError(f"k: expected at most the dimension {n}, got {k}")
    if num_iters < k:
        raise ValueError(f"num_iters: expected at least k = {k}, got {num_iters}")
    m = min(num_iters, n)
    k1, k2 = jax.random.split(key)
    alpha, beta, basis = lanczos(mv, start_vector(k1, v0, n, dtype), m, k2)
    theta, s = jnp.linalg.eigh(tridiag(alpha, beta))
    order = jnp.arange(m)[::-1][:k] if which == "largest" else jnp.arange(k)
    theta, s = theta[order], s[:, order]
    y = (basis.T @ s).T  # [k, n]
    y = y / jnp.linalg.norm(y, axis=1, keepdims=True)
    ay = jax.vmap(mv)(y)
    residuals = jnp.linalg.norm(ay - theta[:, None] * y, axis=1)
    scale = jnp.maximum(jnp.abs(theta), jnp.finfo(dtype).tiny)
    finite = jnp.all(jnp.isfinite(theta)) & jnp.all(jnp.isfinite(residuals))
    converged = finite & jnp.all(residuals <= tol * scale)
    vectors = jax.vmap(unravel)(y)
    return Eigen(theta, vectors, residuals, jnp.asarray(m + k, jnp.int32), converged)


def sharpness(loss: Callable[..., jax.Array], params: PyTree, *args: Any, **options) -> jax.Array:
    """The top (largest algebraic) Hessian eigenvalue of ``loss`` at ``params``: the
    ``values[0]`` of `top_eigenpairs` (same keywords; ``key`` required)."""
    return top_eigenpairs(loss, params, *args, k=1, **options).values[0]


class SpectralDensity(NamedTuple):
    """A spectral density by stochastic Lanczos quadrature: per probe, Gauss nodes and weights.

    Attributes:
      nodes: ``[probes, m]`` Ritz values of each probe's Lanczos run.
      weights: ``[probes, m]`` their quadrature weights (each row sums to 1).
    """

    nodes: jax.Array
    weights: jax.Array

    def density(self, grid: jax.Array, sigma: float) -> jax.Array:
        """``[G]`` the Gaussian-smoothed density ``(1/P) sum_p sum_i w_pi N(grid; theta_pi,
        sigma^2)`` (integrates to 1)."""
        z = (jnp.asarray(grid)[:, None, None] - self.nodes[None]) / sigma
        g = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi))
        return jnp.mean(jnp.sum(self.weights[None] * g, axis=-1), axis=-1)

    def moments(self, j: int) -> jax.Array:
        """``(1/P) sum_p sum_i w_pi theta_pi^j``: with probes of norm ``sqrt(n)`` (Rademacher,
        as here) an estimate of ``tr(A^j) / n``."""
        return jnp.mean(jnp.sum(self.weights * self.nodes**j, axis=-1))


def spectral_density(
    loss: Callable[..., jax.Array] | None,
    params: PyTree,
    *args: Any,
    key: jax.Array,
    num_probes: int = 8,
    num_iters: int = 30,
    operator: Callable[[PyTree], PyTree] | None = None,
) -> SpectralDensity:
    """The spectral density of the Hessian (or ``operator``) by stochastic Lanczos quadrature
    (module docstring): ``num_probes`` Rademacher probes, batched with ``vmap``, each with
    ``num_iters`` Lanczos steps.

    Raises:
      ValueError: non-positive ``num_probes`` or ``num_iters``, a loss that is not scalar.
    """
    num_probes = _checks.check_positive_int("num_probes", num_probes)
    num_iters = _checks.check_positive_int("num_iters", num_iters)
    _checks.check_key("key", key)
    mv, _, n, dtype = _flat_operator(loss, params, operator, args)
    m = min(num_iters, n)

    def one(k):
        k1, k2 = jax.random.split(k)
        v = jax.random.rademacher(k1, (n,), dtype)
        alpha, beta, _ = lanczos(mv, v / jnp.linalg.norm(v), m, k2)
        theta, s = jnp.linalg.eigh(tridiag(alpha, beta))
        return theta, s[0] ** 2

    nodes, weights = jax.vmap(one)(jax.random.split(key, num_probes))
    return SpectralDensity(nodes, weights)


class TraceEstimate(NamedTuple):
    """``value`` of the trace estimate and its ``stderr`` (of the stochastic part)."""

    value: jax.Array
    stderr: jax.Array


def hessian_trace(
    loss: Callable[..., jax.Array] | None,
    params: PyTree,
    *args: Any,
    key: jax.Array,
    num_probes: int = 32,
    method: str = "hutchinson",
    operator: Callable[[PyTree], PyTree] | None = None,
) -> TraceEstimate:
    """The trace of the Hessian (or ``operator``) from ``num_probes`` matrix-vector products.

    ``"hutchinson"`` (Hutchinson 1989): ``tr A ~ (1/P) sum_p z_p^T A z_p`` with Rademacher
    ``z_p``; unbiased, standard error ``std / sqrt(P)``. ``"hutch++"`` (Meyer, Musco, Musco and
    Woodruff 2021): a third of the budget sketches the range ``Q`` of ``A S``, the trace there is
    exact (``tr(Q^T A Q)``), and Hutchinson on the deflated ``(I - QQ^T) A (I - QQ^T)`` takes the
    rest; far lower variance when the spectrum decays.

    Raises:
      ValueError: ``num_probes < 1`` (``< 3`` for ``"hutch++"``), an unknown ``method``.
    """
    num_probes = _checks.check_positive_int("num_probes", num_probes)
    _checks.check_option("method", method, TRACE_METHODS)
    _checks.check_key("key", key)
    if method == "hutch++" and num_probes < 3:
        raise ValueError(f"num_probes: hutch++ needs at least 3 probes, got {num_probes}")
    mv, _, n, dtype = _flat_operator(loss, params, operator, args)
    amv = jax.vmap(mv)

    def hutchinson(key, p, project=None):
        z = jax.random.rademacher(key, (p, n), dtype)
        if project is not None:
            z = project(z)
        samples = jnp.sum(z * amv(z), axis=1)
        return jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(p) if p > 1 else jnp.nan

    if method == "hutchinson":
        return TraceEstimate(*hutchinson(key, num_probes))
    k1, k2 = jax.random.split(key)
    s = num_probes // 3
    sketch = jax.random.rademacher(k1, (s, n), dtype)
    q, _ = jnp.linalg.qr(amv(sketch).T)  # [n, s]
    exact = jnp.trace(q.T @ amv(q.T).T)

    def deflate(z):
        return z - (z @ q) @ q.T

    rest, err = hutchinson(k2, num_probes - 2 * s, deflate)
    return TraceEstimate(exact + rest, err)
