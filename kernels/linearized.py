"""Linearized (kernel-regime) models and the closed-form kernel gradient flow.

``linearize``: the first-order Taylor model ``f_lin(p, x) = f(p0, x) + J(x) (p - p0)``, whose
gradient flow under squared loss is exactly linear with the constant kernel ``Theta = J J^T``
at ``p0`` (Lee et al., "Wide neural networks of any depth evolve as linear models under gradient
descent", 2019).

``kernel_flow``: that flow in closed form. For ``df/dt = -Theta (f - y)`` on the training set
(loss ``L = 1/2 sum_i |f(x_i) - y_i|^2``; pass ``Theta / n`` for the mean loss
``1/(2n) sum_i |...|^2``),

    f_t(X) = y + e^{-Theta t} (f_0(X) - y),
    f_t(x) = f_0(x) + Theta(x, X) Theta^{-1} (I - e^{-Theta t}) (y - f_0(X)),

evaluated through one eigendecomposition ``Theta = V diag(l) V^T`` (no matrix exponential per
``t``); ``Theta^{-1} (I - e^{-Theta t})`` is ``V diag((1 - e^{-l t}) / l) V^T``, which stays
finite (``-> t``) on the null space of ``Theta``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks


def linearize(apply: Callable, params0) -> Callable:
    """``apply_lin(params, x) = apply(params0, x) + J(x) (params - params0)``, J at params0."""
    _checks.check_callable("apply", apply)
    _checks.check_finite_tree("params0", params0)
    tree0 = jax.tree_util.tree_structure(params0)

    def apply_lin(params, x):
        if jax.tree_util.tree_structure(params) != tree0:
            raise ValueError(
                f"params: expected a pytree of structure {tree0} like params0, got "
                f"{jax.tree_util.tree_structure(params)}"
            )
        dparams = jax.tree_util.tree_map(jnp.subtract, params, params0)
        f0, df = jax.jvp(lambda p: apply(p, x), (params0,), (dparams,))
        return f0 + df

    return apply_lin


def kernel_flow(ntk_train: jax.Array, y_train: jax.Array) -> Callable:
    """Closed-form gradient flow of the kernel model (module docstring), as a factory.

    The neural-tangents convention (``predict.gradient_descent_mse``): the eigendecomposition of
    ``Theta(X, X)`` is done once here; the returned function evaluates any times and test sets::

        predict = kernel_flow(ntk_train, y_train)
        f_train, f_test = predict(ts, f0_train, f0_test, ntk_test_train)

    Examples:
      >>> predict = kernel_flow(jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, 1.0]))
      >>> f_train, _ = predict(jnp.array([0.0, 1.0]), jnp.zeros(2))
      >>> print(jnp.round(f_train[1], 4))  # 1 - exp(-l t) per eigenvalue l = 2, 1
      [0.8647 0.6321]

    Args:
      ntk_train: ``[n, n]`` symmetric positive semi-definite ``Theta(X, X)`` (concrete kernels
        are checked: symmetric to ``1e-6`` relative, eigenvalues ``>= -1e-6 max|l|``; a kernel
        with rounding-level negative eigenvalues is clamped to PSD).
      y_train: ``[n]`` or ``[n, k]`` targets.

    Returns:
      ``predict(ts [T], f0_train, f0_test=None, ntk_test_train=None) -> (f_train [T, n(, k)],
      f_test [T, m(, k)] or None)``, with ``f0_train`` like ``y_train``, ``f0_test`` ``[m(, k)]``
      and ``ntk_test_train`` ``[m, n]`` (both or neither).

    Raises:
      ValueError: a non-square, non-symmetric or non-PSD kernel; targets, outputs or test
        kernels whose shapes do not match.
    """
    _checks.check_array("ntk_train", ntk_train)
    _checks.check_array("y_train", y_train)
    ntk_train = jnp.asarray(ntk_train)
    n = ntk_train.shape[0] if ntk_train.ndim == 2 else -1
    if ntk_train.ndim != 2 or ntk_train.shape != (n, n):
        raise ValueError(f"ntk_train: expected a square matrix [n, n], got {ntk_train.shape}")
    conc = _checks.concrete(ntk_train)
    if conc is not None:
        if not np.isfinite(conc).all():
            raise ValueError("ntk_train: expected finite entries")
        scale = max(float(np.abs(conc).max()), np.finfo(conc.dtype).tiny)
        if np.abs(conc - conc.T).max() > 1e-6 * scale:
            raise ValueError(
                f"ntk_train: expected a symmetric kernel, got max |K - K^T| = "
                f"{np.abs(conc - conc.T).max():.3g} (max |K| = {scale:.3g})"
            )
        low = float(np.linalg.eigvalsh((conc + conc.T) / 2).min())
        if low < -1e-6 * scale:
            raise ValueError(
                f"ntk_train: expected a positive semi-definite kernel, got the eigenvalue {low:.3g}"
                f" (max |K| = {scale:.3g})"
            )
    y_train = jnp.asarray(y_train)
    if y_train.shape[:1] != (n,) or y_train.ndim > 2:
        raise ValueError(f"y_train: expected shape [{n}] or [{n}, k], got {y_train.shape}")
    lam, vecs = jnp.linalg.eigh((ntk_train + ntk_train.T) / 2)
    lam = jnp.maximum(lam, 0.0)  # rounding-level negatives only (checked above)
    tiny = jnp.finfo(lam.dtype).tiny ** 0.5

    def predict(ts, f0_train, f0_test=None, ntk_test_train=None):
        f0_train = jnp.asarray(f0_train)
        if f0_train.shape != y_train.shape:
            raise ValueError(
                f"f0_train: expected shape {y_train.shape} like y_train, got {f0_train.shape}"
            )
        if (ntk_test_train is None) != (f0_test is None):
            raise ValueError("ntk_test_train: expected f0_test and ntk_test_train both or neither")
        ts = jnp.atleast_1d(jnp.asarray(ts))
        if ts.ndim != 1:
            raise ValueError(f"ts: expected a 1-D array of times, got shape {ts.shape}")
        r0 = vecs.T @ (f0_train - y_train).reshape(n, -1)  # residual in the eigenbasis [n, k]
        decay = jnp.exp(-lam[None, :] * ts[:, None])  # [T, n]
        f_train = y_train.reshape(n, -1)[None] + jnp.einsum("ij,tj,jk->tik", vecs, decay, r0)
        f_train = f_train.reshape(len(ts), *y_train.shape)
        if ntk_test_train is None:
            return f_train, None
        ntk_test_train, f0_test = jnp.asarray(ntk_test_train), jnp.asarray(f0_test)
        m = ntk_test_train.shape[0] if ntk_test_train.ndim == 2 else -1
        if ntk_test_train.shape != (m, n):
            raise ValueError(f"ntk_test_train: expected shape [m, {n}], got {ntk_test_train.shape}")
        if f0_test.shape != (m, *y_train.shape[1:]):
            raise ValueError(
                f"f0_test: expected shape {(m, *y_train.shape[1:])}, got {f0_test.shape}"
            )
        # (1 - e^{-l t}) / l, -> t as l -> 0
        safe = jnp.where(lam > tiny, lam, 1.0)
        gain = jnp.where(
            lam[None] > tiny, -jnp.expm1(-lam[None] * ts[:, None]) / safe[None], ts[:, None]
        )
        f_test = f0_test.reshape(m, -1)[None] - jnp.einsum(
            "mi,ij,tj,jk->tmk", ntk_test_train, vecs, gain, r0
        )
        return f_train, f_test.reshape(len(ts), *f0_test.shape)

    return predict
