"""The Nikaido-Isoda error of a pair of mixed strategies.

``NI(mu, nu) = max_y F_mu(y) - min_x F_nu(x) >= 0``, with ``F_mu(y) = sum_i a_i f(x_i, y)`` and
``F_nu(x) = sum_j b_j f(x, y_j)``: the sum of both players' best-response gains, zero exactly at
a mixed Nash equilibrium (Nikaido & Isoda 1955). Best responses over a continuous domain are
found by search: the first variations are evaluated at every candidate (a grid: exact search on
it) and, with ``steps > 0``, every candidate is then refined by ``steps`` projected gradient
steps (descent for ``x``, ascent for ``y``; every start is kept, none is skipped, and the best of
the starting and the refined values counts). The result is therefore a lower bound of the true
error, exact when the best responses lie on the candidates or in their basins.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ...models import _checks
from ...models._particles import Particles
from ..measures._geometry import check_domain, retract, tangent
from ._mixed import _domains, _matrix, check_strategies


def _best(f, candidates, other, side, steps, lr, domain, args):
    """min (side=+1) or max (side=-1) over candidates of the first variation against ``other``."""

    def values(c):
        if side > 0:  # F_nu(x) at candidates x
            return _matrix(f, c, other.positions, args) @ other.weights
        return other.weights @ _matrix(f, other.positions, c, args)

    v0 = values(candidates)

    def one(c, _):
        g = jax.grad(lambda c: jnp.sum(values(c)))(c)
        return retract(domain, c - side * lr * tangent(domain, c, g)), None

    if steps:
        refined, _ = jax.lax.scan(one, candidates, None, length=steps)
        v0 = jnp.concatenate([v0, values(refined)])
    return jnp.min(v0) if side > 0 else jnp.max(v0)


def nikaido_isoda(
    f: Any,
    mu: Particles,
    nu: Particles,
    *,
    x_candidates: Any,
    y_candidates: Any,
    steps: int | tuple[int, int] = 0,
    lr: float | jax.Array | None = None,
    domain: Any = "euclidean",
    args: Any = None,
) -> jax.Array:
    """The Nikaido-Isoda error ``max_y F_mu(y) - min_x F_nu(x)`` (module docstring).

    Usable as an observable of `mixed_nash` (jit- and vmap-compatible).

    Args:
      f: payoff ``f(x, y)`` (or ``f(x, y, args)``).
      mu, nu: mixed strategies (`Particles`, weights on the simplex).
      x_candidates: ``[Gx, ...]`` candidate best responses of the min player (a grid, random
        starts, the atoms of ``mu``...); y_candidates: ``[Gy, ...]`` of the max player.
      steps: projected gradient steps refining every candidate (0: exact search on them), or a
        pair (min player, max player): e.g. ``(0, 30)`` when the min player's strategies live on
        a fixed finite set (its candidates are then that set, searched exactly).
      lr: their step size (required when ``steps > 0``).
      domain: one of `flowax.dynamics.measures.DOMAINS` or a pair (min player, max player).
      args: data handed to ``f``.

    Returns:
      The scalar error (``>= 0`` up to rounding when the candidates contain the supports).

    Example (``f = cos 2 pi (x - y)`` on the torus: ``NI = |sum_i a_i e^{2 pi i x_i}| +
    |sum_j b_j e^{2 pi i y_j}|``):
      >>> f = lambda x, y: jnp.cos(2 * jnp.pi * (x[0] - y[0]))
      >>> p = Particles(jnp.array([0.5, 0.5]), jnp.array([[0.0], [0.25]]))
      >>> grid = jnp.linspace(0, 1, 400, endpoint=False)[:, None]
      >>> ni = nikaido_isoda(f, p, p, x_candidates=grid, y_candidates=grid, domain="torus")
      >>> print(f"{float(ni):.4f}")   # 2 |1 + i| / 2
      1.4142
    """
    doms = _domains(domain)
    check_strategies(f, mu, nu, doms, args, names=("mu", "nu"))
    for name, c, p, d in (
        ("x_candidates", x_candidates, mu, doms[0]),
        ("y_candidates", y_candidates, nu, doms[1]),
    ):
        _checks.check_array(name, c, ndim=len(jnp.shape(p.positions)))
        if jnp.shape(c)[1:] != jnp.shape(p.positions)[1:]:
            raise ValueError(
                f"{name}: expected candidates of shape [G, *{tuple(jnp.shape(p.positions)[1:])}]"
                f" (one position of the player each), got {jnp.shape(c)}"
            )
        check_domain(name, d, c)
    if isinstance(steps, (tuple, list)):
        if len(steps) != 2:
            raise ValueError(
                f"steps: expected an int or a pair (min player, max player), got {steps!r}"
            )
        sx, sy = (_checks.check_int(f"steps[{i}]", s, minimum=0) for i, s in enumerate(steps))
    else:
        sx = sy = _checks.check_int("steps", steps, minimum=0)
    if sx or sy:
        _checks.check_positive("lr", lr)
    xc, yc = jnp.asarray(x_candidates), jnp.asarray(y_candidates)
    best_y = _best(f, yc, mu, -1, sy, lr, doms[1], args)
    best_x = _best(f, xc, nu, +1, sx, lr, doms[0], args)
    return best_y - best_x
