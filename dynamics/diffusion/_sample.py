"""Sampling by the reverse-time SDE or the probability-flow ODE, through `integrate`.

For a forward process ``dX = f(t, X) dt + g(t) dB`` on ``[0, T]`` with score ``s(t, y)``, the
time reversal ``Y_u = X_{T - u}`` (forward time ``u``) solves (Anderson 1982; Song et al. 2021)

    dY = [-f(T - u, Y) + g(T - u)^2 s(T - u, Y)] du + g(T - u) dB           (method="sde"),
    dY/du = -f(T - u, Y) + g(T - u)^2 s(T - u, Y) / 2                       (method="ode"),

the second (the probability-flow ODE) having the same marginals. Both are integrated from
``u = 0`` (``t = t_max``) to ``u = t_max - t_min`` by the one `integrate`: the ODE with any
diffrax solver and adaptive steps, the SDE by fixed steps (Euler-Maruyama by default). The start
``Y_0 ~ N(0, prior_std(t_max)^2 I)`` and the Brownian path are functions of ``key`` alone, so two
scores sampled with one key are compared on the same draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from .._integrate import integrate
from .._trajectory import Stats
from ._processes import check_process, check_time
from ._scores import check_event_shape

SAMPLE_METHODS = ("sde", "ode")


def sample(
    score: Callable,
    process: Any,
    *,
    key: jax.Array,
    n: int,
    event_shape: tuple[int, ...],
    t_min: float,
    t_max: float | None = None,
    method: str = "sde",
    steps: int | None = None,
    dt: float | None = None,
    solver: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dtype: Any = None,
    start: jax.Array | None = None,
    max_steps: int = 16_384,
) -> tuple[jax.Array, Stats]:
    """``n`` samples at time ``t_min`` of the reverse process driven by ``score`` (module
    docstring).

    Args:
      score: ``score(t, y [n, *event]) -> [n, *event]`` (e.g. `empirical_score`).
      process: the forward process.
      key: PRNG key of the start points and (SDE) of the Brownian path.
      n: number of samples; event_shape: the shape of one sample.
      t_min: final time ``0 < t_min < t_max`` (stop short of 0, where ``s*`` is singular).
      t_max: start time (default the process's ``T``).
      method: ``"sde"`` (reverse SDE, fixed steps) or ``"ode"`` (probability flow; adaptive
        unless ``steps`` or ``dt`` is given).
      steps: number of fixed steps over ``[t_min, t_max]``; or dt: the fixed step size (the
        last step is shortened to end at ``t_min``). One of them is required for the SDE.
      solver: any `integrate` solver (default Euler-Maruyama for the SDE, Tsit5 for the ODE).
      rtol, atol, max_steps: of the adaptive ODE solve.
      dtype: of the start points (default: the default float dtype).
      start: ``[n, *event]`` start points instead of the draw from ``key`` (ODE maps).

    Returns:
      ``(samples [n, *event], stats)``: a blow-up shows in ``stats.status`` /
      ``stats.nonfinite_t`` (`flowax.dynamics.Stats`), never as silent NaNs.

    Raises:
      ValueError: an invalid process, times outside ``(0, T]`` or ``t_min >= t_max``, an unknown
        method, an SDE without ``steps`` or ``dt``, both given, a non-positive ``n``, ``steps`` or
        ``dt``.
    """
    _checks.check_callable("score", score)
    check_process(process)
    _checks.check_option("method", method, SAMPLE_METHODS)
    n = _checks.check_positive_int("n", n)
    event = check_event_shape("event_shape", event_shape)
    t_max = process.T if t_max is None else t_max
    check_time("t_min", t_min, process)
    check_time("t_max", t_max, process)
    lo, hi = _checks.concrete(t_min), _checks.concrete(t_max)
    if lo is not None and hi is not None and float(lo) >= float(hi):
        raise ValueError(f"t_min: expected t_min < t_max = {float(hi)}, got {float(lo)}")
    if steps is not None and dt is not None:
        raise ValueError("dt: pass either steps or dt, not both")
    if steps is not None:
        steps = _checks.check_positive_int("steps", steps)
    elif dt is not None:
        _checks.check_positive("dt", dt)
    elif method == "sde":
        raise ValueError(
            "steps: the reverse SDE takes fixed steps; pass steps=K (e.g. 200) or a step size dt"
        )
    _checks.check_key("key", key)
    dtype = dtype or jnp.result_type(float)
    k_start, k_noise = jax.random.split(key)
    if start is None:
        y0 = process.prior_std(t_max) * jax.random.normal(k_start, (n,) + event, dtype)
    else:
        _checks.check_array("start", start, ndim=len(event) + 1)
        if tuple(jnp.shape(start)) != (n,) + event:
            raise ValueError(f"start: expected shape {(n,) + event}, got {jnp.shape(start)}")
        y0 = jnp.asarray(start, dtype)
    span = t_max - t_min
    half = 0.5 if method == "ode" else 1.0

    def field(u, y, args):
        t = t_max - u
        g = process.diffusion(t)
        return -process.drift(t, y) + half * g**2 * score(t, y)

    def diffusion(u, y, args):
        return process.diffusion(t_max - u) * jnp.ones_like(y)

    options: dict[str, Any] = dict(n_save=2, solver=solver, max_steps=max_steps)
    if steps is not None:
        options.update(adaptive=False, dt0=span / steps, max_steps=max(max_steps, steps + 1))
    elif dt is not None:
        lo_, hi_ = _checks.concrete(span), _checks.concrete(dt)
        need = (
            int(np.ceil(float(lo_) / float(hi_))) + 1 if lo_ is not None and hi_ is not None else 0
        )
        options.update(adaptive=False, dt0=dt, max_steps=max(max_steps, need))
    if method == "sde":
        options.update(diffusion=diffusion, key=k_noise)
    else:
        options.update(rtol=rtol, atol=atol)
    traj = integrate(field, y0, t1=span, observables={}, **options)
    return traj.final, traj.stats
