"""Mixed Nash equilibria of continuous zero-sum games by conic particle methods.

Mixed strategies ``mu = sum_i a_i delta_{x_i}`` (min player) and ``nu = sum_j b_j delta_{y_j}``
(max player) are `Particles` with weights on the simplex; the payoff is
``F(mu, nu) = sum_ij a_i b_j f(x_i, y_j)``, with first variations ``F_nu(x) = sum_j b_j f(x, y_j)``
and ``F_mu(y) = sum_i a_i f(x_i, y)``. A mixed Nash equilibrium is a saddle point of ``F``: its
`nikaido_isoda` error ``max_y F_mu(y) - min_x F_nu(x)`` is 0.

Methods (Wang & Chizat 2022/2025, "An exponentially converging particle method for the mixed
Nash equilibrium of continuous games"), all built from one explicit update
``T_z(w)`` -- the conic (WFR) step of `flowax.dynamics.measures` taken *from* ``z = (mu, nu)``
with the first variations evaluated *at* ``w``:

    a_i <- a_i exp(-eta_a F_nu'(x_i)) / Z,   x_i <- R(x_i - eta_x P grad F_nu'(x_i)),
    b_j <- b_j exp(+eta_b F_mu'(y_j)) / Z,   y_j <- R(y_j + eta_y P grad F_mu'(y_j)),

(``F_nu', F_mu'`` the first variations at ``w``; ``P``, ``R`` the domain's tangent projection
and retraction, see `flowax.dynamics.measures.DOMAINS`):

* ``"cp_mda"``: conic particle mirror descent-ascent, ``z <- T_z(z)``;
* ``"cp_mp"``: conic particle mirror prox, ``z <- T_z(T_z(z))`` (extra-gradient: the update from
  ``z`` with the half step's first variations), the method of the paper's experiments;
* ``"cp_pp"``: conic particle proximal point, ``z <- w`` with ``w = T_z(w)``, solved by the
  fixed-point iteration ``w <- T_z(w)`` from ``w = z`` (its first two iterates are ``cp_mda``
  and ``cp_mp``) until ``max |w_new - w| <= pp_tol`` or ``pp_iterations`` (then the step's
  ``inner_ok`` is False, reported in `Trajectory.stats`). The iteration contracts when the
  steps are small against the payoff's curvature (``eta_x |grad_xx f| < 1`` and
  ``eta_a |f| < 1``, roughly); past that it stalls and says so;
* ``"mda"``, ``"mp"``: the fixed-support baselines (mirror descent-ascent and mirror prox on
  the weights only; positions frozen, e.g. on a grid, and the payoff matrix computed once).

The continuous-time limit is the interacting WFR flow (`mixed_nash_flow`):
``dx_i/dt = -alpha P grad F_nu'(x_i)``, ``da_i/dt = -beta a_i (F_nu'(x_i) - sum_k a_k
F_nu'(x_k))`` and the max player with opposite signs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ...models import _checks
from ...models._particles import Particles, check_particles
from .. import _save
from .._integrate import integrate
from .._iterate import Stepper, iterate
from .._trajectory import Trajectory
from ..measures._geometry import DOMAINS, check_domain, conic_step, retract, wfr_velocity
from ._pure import Payoff, _call
from ._separable import SeparablePayoff

MIXED_METHODS = ("cp_mda", "cp_mp", "cp_pp", "mda", "mp")
FIXED_SUPPORT = ("mda", "mp")


def _matrix(f, xs, ys, args=None):
    if isinstance(f, SeparablePayoff) and args is None:
        return f.payoff_matrix(xs, ys)
    row = lambda x: jax.vmap(lambda y: _call(f, x, y, args))(ys)  # noqa: E731
    return jax.vmap(row)(xs)


def _check_f(f, x, y, args):
    _checks.check_callable("f", f)
    call = "f(x, y)" if args is None else "f(x, y, args)"
    _checks.check_scalar_fn("f", lambda x, y: _call(f, x, y, args), x, y, call=call)


def payoff_matrix(f: Payoff, xs: jax.Array, ys: jax.Array, args: Any = None) -> jax.Array:
    """``K[i, j] = f(xs[i], ys[j])`` ``[m, n]`` (one vmap over each player): the matrix of the
    finite game a fixed-support method plays, or a linear program's input.

    Args:
      f: payoff ``f(x, y) -> scalar`` (or ``f(x, y, args)``).
      xs: ``[m, ...]`` positions of the min player; ys: ``[n, ...]`` of the max player.

    Raises:
      ValueError: positions that are not non-empty finite arrays with a leading axis, a payoff
        that does not map one position of each to a real scalar.
    """
    _checks.check_array("xs", xs, ndim=tuple(range(1, 9)))
    _checks.check_array("ys", ys, ndim=tuple(range(1, 9)))
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    _check_f(f, xs[0], ys[0], args)
    return _matrix(f, xs, ys, args)


def payoff(f: Payoff, mu: Particles, nu: Particles, args: Any = None) -> jax.Array:
    """``F(mu, nu) = sum_ij a_i b_j f(x_i, y_j)`` for measures ``mu``, ``nu`` (`Particles`)."""
    check_particles(mu, "mu")
    check_particles(nu, "nu")
    _check_f(f, mu.positions[0], nu.positions[0], args)
    return _value(f, mu, nu, args)


def _value(f, mu, nu, args=None):
    return mu.weights @ _matrix(f, mu.positions, nu.positions, args) @ nu.weights


def first_variations(f: Payoff, mu: Particles, nu: Particles, args: Any = None):
    """``(F_nu(x_i) [m], grad F_nu(x_i) [m, ...], F_mu(y_j) [n], grad F_mu(y_j) [n, ...])``.

    One forward pass over the ``m x n`` payoff matrix and one backward pass per player (the
    cotangents ``1 b^T`` and ``a 1^T``), so no gradient is divided by a weight. A
    `SeparablePayoff` never forms the matrix: ``K b = Phi W (Psi^T b) + ...`` and the gradients
    are one vjp of that through the features.
    """
    a, b = mu.weights, nu.weights
    if isinstance(f, SeparablePayoff) and args is None:  # never form the matrix
        (kb, ak), vjp = jax.vjp(
            lambda xs, ys: f.first_variations(a, xs, b, ys), mu.positions, nu.positions
        )
        gx = vjp((jnp.ones_like(kb), jnp.zeros_like(ak)))[0]
        gy = vjp((jnp.zeros_like(kb), jnp.ones_like(ak)))[1]
        return kb, gx, ak, gy
    k, vjp = jax.vjp(lambda xs, ys: payoff_matrix(f, xs, ys, args), mu.positions, nu.positions)
    gx = vjp(jnp.broadcast_to(b[None, :], k.shape))[0]
    gy = vjp(jnp.broadcast_to(a[:, None], k.shape))[1]
    return k @ b, gx, a @ k, gy


class NashState(NamedTuple):
    """State of `mixed_nash_step`: the strategies, the cached payoff matrix (fixed-support
    methods; None otherwise) and whether the last proximal inner solve converged."""

    mu: Particles
    nu: Particles
    matrix: jax.Array | None
    inner_ok: jax.Array


def _pair(name, value, allow_zero=False):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name}: expected a scalar or a pair (min player, max player), got {value!r}"
            )
        for i, v in enumerate(value):
            _checks.check_positive(f"{name}[{i}]", v, allow_zero=allow_zero)
        return tuple(value)
    _checks.check_positive(name, value, allow_zero=allow_zero)
    return value, value


def _domains(domain):
    if isinstance(domain, (tuple, list)):
        if len(domain) != 2:
            raise ValueError(
                f"domain: expected one of {DOMAINS} or a pair of them (min player, max player), "
                f"got {domain!r}"
            )
        for i, d in enumerate(domain):
            _checks.check_option(f"domain[{i}]", d, DOMAINS)
        return tuple(domain)
    _checks.check_option("domain", domain, DOMAINS)
    return domain, domain


def check_strategies(f, mu, nu, domain, args, names=("mu0", "nu0")):
    """Raises unless ``mu``, ``nu`` are probability measures on their domains and ``f`` maps one
    position of each to a real scalar."""
    for p, name, dom in zip((mu, nu), names, domain, strict=True):
        check_particles(p, name)
        w = _checks.concrete(p.weights)
        if w is not None:
            tol = _checks.simplex_tolerance(w.dtype, w.size)
            if abs(float(w.sum()) - 1.0) > tol:
                raise ValueError(
                    f"{name}.weights: expected weights summing to 1 (a mixed strategy), got sum "
                    f"{float(w.sum())!r}"
                )
        check_domain(f"{name}.positions", dom, p.positions)
    _check_f(f, mu.positions[0], nu.positions[0], args)


def _max_change(u, v, domain):
    out = []
    for p, q, dom in zip(u, v, domain, strict=True):
        dx = p.positions - q.positions
        if dom == "torus":
            dx = dx - jnp.round(dx)
        out += [jnp.max(jnp.abs(p.weights - q.weights)), jnp.max(jnp.abs(dx))]
    return jnp.max(jnp.stack(out))


def mixed_nash_step(
    f: Payoff,
    *,
    method: str = "cp_mp",
    eta_weights: Any,
    eta_positions: Any = None,
    domain: Any = "euclidean",
    pp_tol: float | None = None,
    pp_iterations: int = 100,
) -> Stepper:
    """One step of a mixed-Nash method (module docstring), as a `Stepper`.

    Args:
      f: payoff ``f(x, y)`` of one position of each player (or ``f(x, y, args)``).
      method: one of `MIXED_METHODS`.
      eta_weights: mirror step on the weights ``> 0``, or a pair (min player, max player).
      eta_positions: step on the positions ``>= 0`` (or a pair; 0 freezes that player's
        positions) for the conic methods; must be None for ``"mda"`` / ``"mp"``.
      domain: one of `flowax.dynamics.measures.DOMAINS`, or a pair (min player, max player).
      pp_tol: ``"cp_pp"`` inner tolerance (default ``1e3 eps``); pp_iterations: its most
        fixed-point iterations.

    Returns:
      ``Stepper(init((mu, nu)) -> NashState, step(state, args=None), value = (mu, nu),
      inner_ok)``.
    """
    _checks.check_callable("f", f)
    _checks.check_option("method", method, MIXED_METHODS)
    eta_w = _pair("eta_weights", eta_weights)
    fixed = method in FIXED_SUPPORT
    if fixed and eta_positions is not None:
        raise ValueError(
            f"eta_positions: the fixed-support method {method!r} moves no positions; pass None "
            f"(or use 'cp_{method}'), got {eta_positions!r}"
        )
    if not fixed and eta_positions is None:
        raise ValueError(
            f"eta_positions: the conic method {method!r} needs a position step >= 0 (or a pair)"
        )
    eta_x = (0.0, 0.0) if fixed else _pair("eta_positions", eta_positions, allow_zero=True)
    doms = _domains(domain)
    if pp_tol is not None:
        _checks.check_positive("pp_tol", pp_tol)
    pp_iterations = _checks.check_positive_int("pp_iterations", pp_iterations)

    def variations(w, state, args):
        if fixed:
            k = state.matrix
            # ``a @ k``, not ``k.T @ a``: XLA re-transposes a loop-carried matrix every step
            return k @ w[1].weights, None, w[0].weights @ k, None
        return first_variations(f, w[0], w[1], args)

    def update(z, w, state, args):
        vx, gx, vy, gy = variations(w, state, args)
        mu, nu = z
        if fixed:
            gx, gy = jnp.zeros_like(mu.positions), jnp.zeros_like(nu.positions)
        common = dict(lr=1.0, normalize=True)
        mu = conic_step(mu, vx, gx, alpha=eta_x[0], beta=eta_w[0], domain=doms[0], **common)
        nu = conic_step(nu, -vy, -gy, alpha=eta_x[1], beta=eta_w[1], domain=doms[1], **common)
        return mu, nu

    def init(z, *, key=None):
        del key
        mu, nu = z
        k = _matrix(f, mu.positions, nu.positions) if fixed else None
        return NashState(mu, nu, k, jnp.array(True))

    def step(state, args=None):
        if fixed and args is not None:
            raise ValueError("args: the fixed-support methods cache the payoff; pass no args")
        z = (state.mu, state.nu)
        ok = jnp.array(True)
        if method in ("cp_mda", "mda"):
            z = update(z, z, state, args)
        elif method in ("cp_mp", "mp"):
            z = update(z, update(z, z, state, args), state, args)
        else:
            dtype = jnp.result_type(z[0].weights)
            tol = pp_tol if pp_tol is not None else 1e3 * jnp.finfo(dtype).eps

            def body(c):
                w, _, i = c
                w_new = update(z, w, state, args)
                return w_new, _max_change(w_new, w, doms), i + 1

            def cond(c):
                return (c[1] > tol) & (c[2] < pp_iterations)

            z, change, _ = jax.lax.while_loop(cond, body, (z, jnp.asarray(jnp.inf, dtype), 0))
            ok = change <= tol
        return NashState(*z, state.matrix, ok)

    return Stepper(init, step, value=lambda s: (s.mu, s.nu), inner_ok=lambda s: s.inner_ok)


def mixed_nash(
    f: Payoff,
    mu0: Particles,
    nu0: Particles,
    *,
    method: str = "cp_mp",
    steps: int,
    eta_weights: Any,
    eta_positions: Any = None,
    domain: Any = "euclidean",
    pp_tol: float | None = None,
    pp_iterations: int = 100,
    n_save: int = _save.DEFAULT_N_SAVE,
    spacing: str = "linear",
    save_steps: Any = None,
    args: Any = None,
    observables: dict[str, Callable] | None = None,
) -> Trajectory:
    """A mixed Nash equilibrium of the game ``f`` by `mixed_nash_step` run with `iterate`.

    Save times are step counts. Observables see ``(mu, nu)``; pass
    ``{"ni": lambda t, s: nikaido_isoda(f, *s, x_candidates=..., y_candidates=...)}`` to
    record the Nikaido-Isoda error along the run.

    Args:
      f: payoff ``f(x, y)`` of one position of each player (``f(x, y, args)`` with ``args``).
      mu0, nu0: initial mixed strategies (`Particles`, weights on the simplex, positions on
        the domain: ``[m, d]`` on the torus ``[0, 1)^d`` or unit vectors on the sphere).
      method, eta_weights, eta_positions, domain, pp_tol, pp_iterations: see
        `mixed_nash_step`.
      steps, n_save, spacing, save_steps: see `iterate`.
      args: handed to ``f`` (conic methods).
      observables: ``{name: fn(t, (mu, nu))}``; default ``{"value": F(mu, nu)}``.

    Returns:
      `Trajectory` with ``final = (mu, nu)``.

    Raises:
      ValueError: weights negative, non-finite or not summing to one; positions whose leading
        axis differs from the weights or whose shape does not fit the domain; a payoff that does
        not return a scalar; non-positive steps; an unknown method or domain.
    """
    stepper = mixed_nash_step(
        f,
        method=method,
        eta_weights=eta_weights,
        eta_positions=eta_positions,
        domain=domain,
        pp_tol=pp_tol,
        pp_iterations=pp_iterations,
    )
    if method in FIXED_SUPPORT and args is not None:
        raise ValueError("args: the fixed-support methods cache the payoff; pass no args")
    check_strategies(f, mu0, nu0, _domains(domain), args)
    if observables is None:
        observables = {"value": lambda t, s: _value(f, *s, args)}
    return iterate(
        stepper,
        (mu0, nu0),
        steps=steps,
        n_save=n_save,
        spacing=spacing,
        save_steps=save_steps,
        args=args,
        observables=observables,
    )


def mixed_nash_flow(
    f: Payoff,
    mu0: Particles,
    nu0: Particles,
    *,
    t1: float | jax.Array,
    alpha: Any = 1.0,
    beta: Any = 1.0,
    domain: Any = "euclidean",
    args: Any = None,
    observables: dict[str, Callable] | None = None,
    **integrator_options: Any,
) -> Trajectory:
    """The interacting WFR flow of the two players (module docstring), through `integrate`.

    Positions are integrated in the ambient space with the velocity projected on the domain's
    tangent space: on the sphere the norms are conserved to the solver's accuracy (``f`` is
    evaluated at ``x / |x|``), on the torus the positions are not wrapped (``f`` is periodic;
    wrap ``final`` with ``x % 1``). ``alpha = 0`` is the Fisher-Rao (replicator) flow of the
    weights, whose ``KL(a*|a) + KL(b*|b)`` is conserved in a game with an interior equilibrium.

    Args:
      f, mu0, nu0, domain, args: as in `mixed_nash`.
      t1: final time.
      alpha, beta: transport and reaction rates ``>= 0`` (scalars or pairs per player).
      observables: ``{name: fn(t, (mu, nu))}``; default ``{"value": F(mu, nu)}``.
      **integrator_options: any keyword of `integrate`.

    Returns:
      `Trajectory` with ``final = (mu, nu)``.
    """
    al, be = _pair("alpha", alpha, allow_zero=True), _pair("beta", beta, allow_zero=True)
    doms = _domains(domain)
    check_strategies(f, mu0, nu0, doms, args)

    def on_domain(z):
        return tuple(
            Particles(p.weights, retract(d, p.positions) if d == "sphere" else p.positions)
            for p, d in zip(z, doms, strict=True)
        )

    def field(t, z, a):
        del t
        mu, nu = on_domain(z)
        vx, gx, vy, gy = first_variations(f, mu, nu, a)
        kw = dict(normalize=True)
        return (
            wfr_velocity(mu, vx, gx, alpha=al[0], beta=be[0], domain=doms[0], **kw),
            wfr_velocity(nu, -vy, -gy, alpha=al[1], beta=be[1], domain=doms[1], **kw),
        )

    if observables is None:
        observables = {"value": lambda t, s: _value(f, *on_domain(s), args)}
    return integrate(
        field, (mu0, nu0), t1=t1, args=args, observables=observables, **integrator_options
    )


def finite_game(matrix: Any) -> tuple[Payoff, Particles, Particles]:
    """A finite zero-sum game ``min_a max_b a^T M b`` as a continuous one: ``f(x, y) = x^T M y``
    on one-hot positions (frozen by the fixed-support methods), uniform initial weights.

    Returns:
      ``(f, mu0, nu0)`` with ``mu0.positions = I_m``, ``nu0.positions = I_n``.
    """
    m = _checks.check_array("matrix", matrix, ndim=2)
    matrix = jnp.asarray(matrix if m is None else m)
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        matrix = matrix.astype(float)
    k, n = matrix.shape
    dtype = matrix.dtype

    def f(x, y):
        return x @ matrix @ y

    mu0 = Particles(jnp.full(k, 1.0 / k, dtype), jnp.eye(k, dtype=dtype))
    nu0 = Particles(jnp.full(n, 1.0 / n, dtype), jnp.eye(n, dtype=dtype))
    return f, mu0, nu0
