"""Kernel-smoothed scores: ``s~(t, y) = E_Z[s(t, y + h Z)]``, ``Z ~ N(0, I)``.

Gabriel, Ged, Han Veiga et al. (2025), "Kernel-smoothed scores for denoising diffusion: a
bias-variance study", smooth the empirical optimal score ``s*`` in space with a Gaussian kernel
``K_h``. Since convolution commutes with the gradient,

    K_h * s* = K_h * grad log p_t^N = grad (K_h * log p_t^N),

the score of the log-exponential double-kernel estimator ``exp(K_h * log (p^N * N(0, sigma_t^2)))``
(the data's empirical law smoothed by the noise kernel, then its logarithm smoothed by ``K_h``).
What flowax computes is exactly that score, at each ``t`` with bandwidth ``h`` (a number or a
function ``h(t)``). What it does not do: normalize that density (only its score is needed to
sample), or choose ``h`` for you (the paper's bias-variance trade-off is the user's sweep).

The expectation over ``Z`` is a tensor Gauss-Hermite rule with ``order`` nodes per dimension
(exact for polynomial scores of degree ``< 2 order``, e.g. affine ones; ``order^D`` evaluations,
so small ``D``), or ``n_samples`` Monte Carlo draws from ``key`` (the same draws for every query
and every ``t``: common random numbers, a smooth function of ``y``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from ._scores import check_event_shape, empirical_score

SMOOTHING_METHODS = ("gauss_hermite", "monte_carlo")
MAX_NODES = 1 << 16


def _nodes(method, event, order, n_samples, key, dtype):
    dim = math.prod(event)
    if method == "gauss_hermite":
        order = _checks.check_positive_int("order", order)
        if order**dim > MAX_NODES:
            raise ValueError(
                f"order: a tensor Gauss-Hermite rule with {order} nodes per dimension in "
                f"{dim} dimensions has {order}^{dim} > {MAX_NODES} nodes; lower `order` or use "
                f"method='monte_carlo'"
            )
        z1, w1 = np.polynomial.hermite_e.hermegauss(order)  # weight exp(-z^2 / 2)
        w1 = w1 / w1.sum()
        grids = np.meshgrid(*([z1] * dim), indexing="ij")
        z = np.stack([g.ravel() for g in grids], axis=1)
        w = np.prod(np.meshgrid(*([w1] * dim), indexing="ij"), axis=0).ravel()
        return jnp.asarray(z, dtype), jnp.asarray(w, dtype)
    n_samples = _checks.check_positive_int("n_samples", n_samples)
    _checks.check_key("key", key)
    z = jax.random.normal(key, (n_samples, dim), dtype)
    return z, jnp.full(n_samples, 1.0 / n_samples, dtype)


def smooth_score(
    score: Callable,
    bandwidth: float | Callable,
    *,
    event_shape: tuple[int, ...],
    method: str = "gauss_hermite",
    order: int = 8,
    n_samples: int = 256,
    key: jax.Array | None = None,
    dtype: Any = None,
) -> Callable:
    """``s~(t, y) = E_Z[score(t, y + h Z)]`` (module docstring) for any score ``score(t, y)``.

    Args:
      score: ``score(t, y [..., *event]) -> [..., *event]``.
      bandwidth: ``h > 0``, or ``h(t) -> h``.
      event_shape: the shape of one point.
      method: ``"gauss_hermite"`` (``order`` nodes per dimension) or ``"monte_carlo"``
        (``n_samples`` draws from ``key``).
      dtype: of the nodes (default: the default float dtype).

    Returns:
      ``smoothed(t, y) -> [..., *event]``.
    """
    _checks.check_callable("score", score)
    if not callable(bandwidth):
        _checks.check_positive("bandwidth", bandwidth)
    _checks.check_option("method", method, SMOOTHING_METHODS)
    event = check_event_shape("event_shape", event_shape)
    dtype = dtype or jnp.result_type(float)
    z, w = _nodes(method, event, order, n_samples, key, dtype)
    z = z.reshape((-1,) + event)

    def smoothed(t, y):
        h = bandwidth(t) if callable(bandwidth) else bandwidth
        batch = jnp.shape(y)[: jnp.ndim(y) - len(event)]
        zb = jnp.reshape(z, (1,) * len(batch) + z.shape)
        pts = jnp.expand_dims(y, -len(event) - 1) + h * zb  # [..., P, *event]
        vals = score(t, pts)
        out = jnp.tensordot(jnp.moveaxis(vals, -len(event) - 1, -1), w, axes=1)
        return out.reshape(batch + event)

    return smoothed


def kernel_smoothed_score(
    data: Any,
    process: Any,
    bandwidth: float | Callable,
    *,
    method: str = "gauss_hermite",
    order: int = 8,
    n_samples: int = 256,
    key: jax.Array | None = None,
    chunk_size: int | None = None,
) -> Callable:
    """The kernel-smoothed empirical score ``K_h * s*`` of ``data`` (module docstring).

    Args:
      data: ``[n, ...]`` training points; process: the forward process.
      bandwidth: ``h > 0`` or ``h(t)``; method, order, n_samples, key: see `smooth_score`.
      chunk_size: of the streamed empirical score (see `empirical_score`).

    Returns:
      ``score(t, y [..., *event]) -> [..., *event]``.

    Raises:
      ValueError: as `empirical_score`; a non-positive bandwidth, an unknown method, a missing
        key for ``"monte_carlo"``, a Gauss-Hermite rule with more than 65536 nodes.
    """
    kw = {} if chunk_size is None else {"chunk_size": chunk_size}
    base = empirical_score(data, process, **kw)
    return smooth_score(
        base,
        bandwidth,
        event_shape=base.event,
        method=method,
        order=order,
        n_samples=n_samples,
        key=key,
        dtype=base.data.dtype,
    )
