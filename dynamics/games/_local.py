"""Local analysis of descent-ascent methods at a stationary point: why a method converges or
cycles (Wang & Chizat 2023, "Local convergence of gradient methods for min-max games: partial
curvature generically suffices").

At a stationary point ``z* = (x*, y*)`` of the field ``v = (-grad_x f, tau grad_y f)`` write its
Jacobian ``J = S + A`` with ``S = (J + J^T)/2`` (symmetric: ``-S`` is the curvature,
``diag(grad_xx f, -tau grad_yy f)`` for ``tau = 1``) and ``A = (J - J^T)/2`` (antisymmetric: the
interaction). The flow converges locally at the rate ``-max Re eig(J)``. For ``|S| << |A|`` first
order perturbation of the eigenvalues ``+- i omega_k`` of ``A`` gives
``Re lambda = u^H S u`` on each eigenvector ``u`` of ``A`` (on each eigenspace: the eigenvalues of
``S`` compressed to it): the rate is the curvature *averaged* along ``A``'s eigenvectors, so it is
positive when ``S != 0`` and ``A``'s eigenvectors are in general position w.r.t. ``ker S`` even
though the smallest eigenvalue of ``-S`` is 0 ("partial curvature").

The discrete methods are linear maps ``z - z* <- M (z - z*)`` near ``z*``:
``gda``: ``I + eta J``; ``extragradient``: ``I + eta J + eta^2 J^2``; ``proximal``:
``(I - eta J)^{-1}``; ``optimistic``: the companion map of ``z_{k+1} = z_k + eta (2 J z_k -
J z_{k-1})``; ``alternating``: ``[[I + eta Jxx, eta Jxy], [eta Jyx (I + eta Jxx), I + eta Jyy +
eta^2 Jyx Jxy]]``. The local rate per step is ``-log rho(M)`` (``rho`` the spectral radius: > 1
diverges, = 1 cycles).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ...models import _checks
from ._pure import METHODS, Payoff, check_payoff, flat_field


class LocalAnalysis(NamedTuple):
    """What `local_analysis` returns (``n`` the total number of scalar coordinates of
    ``(x, y)``).

    Attributes:
      jacobian: ``[n, n]`` Jacobian ``J`` of the descent-ascent field (``x`` coordinates first).
      symmetric, antisymmetric: ``S`` and ``A`` (``J = S + A``).
      eigenvalues: ``[n]`` complex eigenvalues of ``J``.
      flow_rate: ``-max Re eig(J)``: the flow's local exponential rate (> 0: converges).
      averaged_rates: ``[n]`` ``-eig(S compressed to the eigenspaces of A)``, ascending: the
        first-order (``S << A``) rates of the flow, one per eigen-direction of ``A``.
      averaged_rate: ``averaged_rates[0]``, the first-order prediction of ``flow_rate``.
      spectral_radius: ``{method: rho(M_method)}`` at step ``eta`` (empty without ``eta``).
      rates: ``{method: -log rho(M_method) / eta}``: per unit flow time (comparable to
        ``flow_rate``; empty without ``eta``).
    """

    jacobian: jax.Array
    symmetric: jax.Array
    antisymmetric: jax.Array
    eigenvalues: jax.Array
    flow_rate: jax.Array
    averaged_rates: jax.Array
    averaged_rate: jax.Array
    spectral_radius: dict
    rates: dict


def linearizations(j: jax.Array, nx: int, eta: Any) -> dict[str, jax.Array]:
    """The linear map of each method of `METHODS` near a stationary point (module docstring)."""
    n = j.shape[0]
    eye = jnp.eye(n, dtype=j.dtype)
    jxx, jxy, jyx, jyy = j[:nx, :nx], j[:nx, nx:], j[nx:, :nx], j[nx:, nx:]
    top = jnp.concatenate([eye[:nx, :nx] + eta * jxx, eta * jxy], axis=1)
    bottom = jnp.concatenate(
        [eta * jyx @ (eye[:nx, :nx] + eta * jxx), eye[nx:, nx:] + eta * jyy + eta**2 * jyx @ jxy],
        axis=1,
    )
    companion = jnp.block([[eye + 2 * eta * j, -eta * j], [eye, jnp.zeros_like(j)]])
    return {
        "gda": eye + eta * j,
        "alternating": jnp.concatenate([top, bottom], axis=0),
        "extragradient": eye + eta * j + eta**2 * j @ j,
        "optimistic": companion,
        "proximal": jnp.linalg.inv(eye - eta * j),
    }


def _averaged(s, a):
    """Eigenvalues of ``S`` compressed to each eigenspace of ``A`` (eigenvalues of ``A`` closer
    than ``sqrt(eps) |A|`` count as one eigenspace): jit-friendly, as the eigenvalues of the
    block-masked ``U^H S U``."""
    omega, u = jnp.linalg.eigh(1j * a.astype(jnp.result_type(a.dtype, jnp.complex64)))
    eps = jnp.finfo(s.dtype).eps
    tol = jnp.sqrt(eps) * jnp.maximum(jnp.max(jnp.abs(omega)), jnp.max(jnp.abs(s)))
    same = jnp.abs(omega[:, None] - omega[None, :]) <= tol
    m = jnp.where(same, u.conj().T @ s.astype(u.dtype) @ u, 0.0)
    return jnp.linalg.eigvalsh(0.5 * (m + m.conj().T))


def local_analysis(
    f: Payoff,
    x_star: Any,
    y_star: Any,
    *,
    eta: float | jax.Array | None = None,
    ratio: float | jax.Array = 1.0,
    args: Any = None,
) -> LocalAnalysis:
    """Linear stability of the descent-ascent flow and of every discrete method at a point.

    See the module docstring for the quantities. ``(x_star, y_star)`` should be a stationary
    point (the field vanishes there); elsewhere the numbers describe the linearized field.

    Args:
      f: payoff ``f(x, y)`` (or ``f(x, y, args)``), any pytrees ``x``, ``y``.
      x_star, y_star: the point.
      eta: step size of the discrete methods (None: flow quantities only).
      ratio: the max player's time scale ``tau > 0`` (as in `game_flow`).
      args: data handed to ``f``.

    Returns:
      `LocalAnalysis`.

    Example (``f = s x^2/2 + sigma x y``: ``S = diag(-s, 0)``, rate ``s/2`` though ``S`` has a
    zero eigenvalue):
      >>> la = local_analysis(lambda x, y: 0.5 * x**2 + 2 * x * y, 0.0, 0.0)
      >>> print(f"{float(la.flow_rate):.3f} {float(la.averaged_rate):.3f}")
      0.500 0.500
    """
    _checks.check_finite_tree("x_star", x_star)
    _checks.check_finite_tree("y_star", y_star)
    check_payoff(f, x_star, y_star, args)
    _checks.check_positive("ratio", ratio)
    if eta is not None:
        _checks.check_positive("eta", eta)
    fn, nx, z = flat_field(f, x_star, y_star, args, ratio)
    j = jax.jacfwd(fn)(z)
    s, a = 0.5 * (j + j.T), 0.5 * (j - j.T)
    eig = jnp.linalg.eigvals(j)
    averaged = jnp.sort(-_averaged(s, a))
    radius, rates = {}, {}
    if eta is not None:
        for name, m in linearizations(j, nx, eta).items():
            radius[name] = jnp.max(jnp.abs(jnp.linalg.eigvals(m)))
            rates[name] = -jnp.log(radius[name]) / eta
        assert set(radius) == set(METHODS)
    return LocalAnalysis(j, s, a, eig, -jnp.max(eig.real), averaged, averaged[0], radius, rates)
