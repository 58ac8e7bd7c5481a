"""Denoising score matching (Vincent 2011): the loss a score network is trained on.

For data ``x_1 .. x_n`` and ``Y = mu_t x_i + sigma_t Z``,

    L(theta) = E_{i, t, Z} lambda(t) | s_theta(t, Y) + Z / sigma_t |^2,

whose minimizer over all functions is the empirical optimal score `empirical_score` (at each
``t``), so ``L(s) - L(s*)`` is the excess risk of `excess_risk`. At a fixed ``t`` (the setting of
Wu, Marion, Biau & Boyer 2025, "Taking a big step: large learning rates in denoising score
matching prevent memorization") ``lambda = 1``; with ``t`` drawn by ``t_sampler`` the default
weight is ``lambda(t) = sigma_t^2`` (Song et al. 2021), i.e. ``E |sigma_t s + Z|^2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ...models import _checks
from ...models._model import Model
from ._processes import check_process, check_time
from ._scores import check_data

WEIGHTINGS = ("none", "sigma2")


def dsm_loss(
    score_model: Model | Callable,
    data: Any,
    process: Any,
    *,
    t: float | None = None,
    t_sampler: Callable | None = None,
    weighting: str | None = None,
    batch_size: int | None = None,
    n_noise: int = 1,
) -> Callable:
    """The denoising score-matching loss ``loss(params, key) -> scalar`` (module docstring),
    fresh noise (and times, and a minibatch) drawn from ``key`` at every call: hand it to
    `flowax.dynamics.gradient_descent` with per-step keys as ``batches`` (SGD on fresh noise),
    or to any optax loop.

    The model: a `flowax.models.Model` or an ``apply(params, inputs)``. At a fixed ``t`` its
    inputs are the noised points ``[b, D]`` (flattened); with ``t_sampler`` they are ``[b, D + 1]``,
    the time appended as the last feature. It returns the score ``[b, D]``.

    Args:
      data: ``[n, ...]`` training points; process: the forward process.
      t: a fixed time in ``(0, T]``; or t_sampler: ``t_sampler(key, (b,)) -> [b]`` times.
      weighting: ``"none"`` (default at fixed ``t``) or ``"sigma2"`` (default with ``t_sampler``).
      batch_size: data points per call, drawn with replacement (default: all of them).
      n_noise: noise draws per data point.

    Raises:
      ValueError: both or neither of ``t`` / ``t_sampler``, ``t`` outside ``(0, T]``, an unknown
        weighting, bad data or process, non-positive sizes.
    """
    apply = score_model.apply if isinstance(score_model, Model) else score_model
    _checks.check_callable("score_model", apply)
    check_data("data", data)
    check_process(process)
    if (t is None) == (t_sampler is None):
        raise ValueError("t: pass exactly one of a fixed time t or a t_sampler(key, shape)")
    if t is not None:
        check_time("t", t, process)
    else:
        _checks.check_callable("t_sampler", t_sampler)
    weighting = weighting or ("none" if t is not None else "sigma2")
    _checks.check_option("weighting", weighting, WEIGHTINGS)
    n_noise = _checks.check_positive_int("n_noise", n_noise)
    if batch_size is not None:
        batch_size = _checks.check_positive_int("batch_size", batch_size)
    x = jnp.reshape(jnp.asarray(data), (jnp.shape(data)[0], -1))

    def loss(params, key):
        k_batch, k_t, k_z = jax.random.split(key, 3)
        xb = x
        if batch_size is not None:
            xb = x[jax.random.randint(k_batch, (batch_size,), 0, x.shape[0])]
        xb = jnp.tile(xb, (n_noise, 1))
        b = xb.shape[0]
        times = jnp.full((b,), t, x.dtype) if t is not None else t_sampler(k_t, (b,))
        mu, sigma = process.mean_scale(times)[:, None], process.std(times)[:, None]
        z = jax.random.normal(k_z, xb.shape, x.dtype)
        y = mu * xb + sigma * z
        inputs = y if t is not None else jnp.concatenate([y, times[:, None]], axis=1)
        resid = apply(params, inputs) + z / sigma
        w = sigma[:, 0] ** 2 if weighting == "sigma2" else 1.0
        return jnp.mean(w * jnp.sum(resid**2, axis=1))

    return loss
