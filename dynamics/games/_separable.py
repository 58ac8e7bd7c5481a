"""Separable payoffs ``f(x, y) = phi(x)^T W psi(y) + g(x) + h(y)``: the payoff matrix by matrix
products.

A payoff written in features (Fourier modes on the torus, polynomials, random features, the
two-layer networks of max-margin games) makes the ``m x n`` payoff matrix of the mixed-Nash
methods ``Phi W Psi^T + g 1^T + 1 h^T`` with ``Phi = [phi(x_i)]_i`` ``[m, p]`` and
``Psi = [psi(y_j)]_j`` ``[n, q]``: ``O((m p + n q) cost(phi) + m p q + m n q)`` instead of
``m n cost(f)``, and its first variations ``K b = Phi (W (Psi^T b)) + ...`` never form the matrix
at all. Their gradients come from the same autodiff (one vjp through ``phi`` and ``psi``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ...models import _checks


class SeparablePayoff:
    """``f(x, y) = phi(x)^T W psi(y) + x_term(x) + y_term(y)`` (a callable payoff ``f(x, y)``
    that the mixed-Nash methods, `payoff_matrix` and `nikaido_isoda` evaluate by matrix products).

    Args:
      phi: ``phi(x) -> [p]`` features of one min-player position.
      psi: ``psi(y) -> [q]`` features of one max-player position.
      matrix: ``W`` ``[p, q]``.
      x_term, y_term: optional ``g(x) -> scalar`` and ``h(y) -> scalar``.
    """

    def __init__(
        self,
        phi: Callable,
        psi: Callable,
        matrix: Any,
        x_term: Callable | None = None,
        y_term: Callable | None = None,
    ):
        _checks.check_callable("phi", phi)
        _checks.check_callable("psi", psi)
        _checks.check_array("matrix", matrix, ndim=2)
        for name, fn in (("x_term", x_term), ("y_term", y_term)):
            if fn is not None:
                _checks.check_callable(name, fn)
        self.phi, self.psi, self.matrix = phi, psi, jnp.asarray(matrix)
        self.x_term, self.y_term = x_term, y_term

    def features(self, xs: jax.Array, ys: jax.Array):
        """``(Phi [m, p], Psi [n, q], g [m], h [n])`` (zeros where a term is absent)."""
        fx, fy = jax.vmap(self.phi)(xs), jax.vmap(self.psi)(ys)
        self._check(fx.shape[1:], fy.shape[1:])
        gx = jax.vmap(self.x_term)(xs) if self.x_term else jnp.zeros(xs.shape[0], fx.dtype)
        hy = jax.vmap(self.y_term)(ys) if self.y_term else jnp.zeros(ys.shape[0], fy.dtype)
        return fx, fy, gx, hy

    def _check(self, px, qy):
        p, q = self.matrix.shape
        for name, shape, k in (("phi", px, p), ("psi", qy, q)):
            if tuple(shape) != (k,):
                raise ValueError(
                    f"{name}: expected features of shape ({k},) (the matrix is {p} x {q}), got "
                    f"{tuple(shape)}"
                )

    def payoff_matrix(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """``K = Phi W Psi^T + g 1^T + 1 h^T`` ``[m, n]``."""
        fx, fy, gx, hy = self.features(xs, ys)
        return (fx @ self.matrix) @ fy.T + gx[:, None] + hy[None, :]

    def first_variations(self, a, xs, b, ys):
        """``(K b [m], a K [n])`` without forming ``K`` (``a``, ``b`` weights summing to 1)."""
        fx, fy, gx, hy = self.features(xs, ys)
        kb = fx @ (self.matrix @ (b @ fy)) + gx + b @ hy
        ak = fy @ ((a @ fx) @ self.matrix) + hy + a @ gx
        return kb, ak

    def __call__(self, x, y):
        fx, fy = self.phi(x), self.psi(y)
        self._check(jnp.shape(fx), jnp.shape(fy))
        value = fx @ self.matrix @ fy
        if self.x_term:
            value = value + self.x_term(x)
        if self.y_term:
            value = value + self.y_term(y)
        return value

    def __repr__(self):
        p, q = self.matrix.shape
        return f"SeparablePayoff({p} x {q} features)"


def separable(
    phi: Callable,
    psi: Callable,
    matrix: Any,
    *,
    x_term: Callable | None = None,
    y_term: Callable | None = None,
) -> SeparablePayoff:
    """The payoff ``f(x, y) = phi(x)^T W psi(y) + x_term(x) + y_term(y)`` (see `SeparablePayoff`).

    Example: the torus game ``f(x, y) = sum_k c_k cos 2 pi k (x - y)`` is
    ``separable(phi, phi, diag(c, c))`` with ``phi(x) = [cos 2 pi k x, sin 2 pi k x]_k``.

    Raises:
      ValueError: ``phi``/``psi`` not callable, ``matrix`` not a finite 2-d array.
    """
    return SeparablePayoff(phi, psi, matrix, x_term, y_term)
