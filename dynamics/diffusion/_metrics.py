"""Memorization metrics: nearest-neighbour ratios, the Gaussian-kernel MMD, the denoising
score-matching excess risk.

* A sample is a copy of a training point when its distance to the nearest training point is
  below ``1/3`` of its distance to the second nearest (Gu, Du, Pang, Li, Lin & Wang 2023, "On
  memorization in diffusion models"): `nearest_neighbours`, `memorized_fraction`.
* `mmd`: the unbiased estimator of ``MMD^2(P, Q)`` with the kernel ``exp(-|x - y|^2 / (2 h^2))``
  (Gretton et al. 2012, eq. 3): ``1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j}
  k(y_i, y_j) - 2/(mn) sum_ij k(x_i, y_j)``; it may be slightly negative when ``P = Q``.
* `excess_risk`: ``R(s) - R(s*) = (1/n) sum_i E_{Y ~ N(mu_t x_i, sigma_t^2 I)} |s(Y) - s*(Y)|^2``
  at a fixed ``t``, where ``R(s) = (1/n) sum_i E |s(mu_t x_i + sigma_t Z) + Z / sigma_t|^2`` is the
  denoising score-matching risk (`dsm_loss`) and ``s*`` the empirical optimal score: the cross
  term vanishes because ``s*(y) = E[-Z / sigma_t | Y = y]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from ._processes import check_process, check_time
from ._scores import DEFAULT_CHUNK, check_data, check_queries, empirical_score, pad_to_chunks


def _flat(x):
    return jnp.reshape(x, (jnp.shape(x)[0], -1))


def nearest_neighbours(
    samples: Any, data: Any, *, chunk_size: int = DEFAULT_CHUNK
) -> tuple[jax.Array, jax.Array]:
    """Distances from each sample to its nearest and second-nearest training points, and the
    nearest one's index: ``(distances [q, 2], index [q])``, streamed over data chunks.

    Raises:
      ValueError: data not ``[n, ...]`` with ``n >= 2``; samples whose trailing shape differs.
    """
    event = check_data("data", data)
    if np.shape(data)[0] < 2:
        raise ValueError(f"data: expected at least 2 points, got shape {np.shape(data)}")
    _checks.check_array("samples", samples, ndim=tuple(range(1, 9)))
    check_queries("samples", samples, event)
    chunk = _checks.check_positive_int("chunk_size", chunk_size)
    x = _flat(jnp.asarray(data))
    y = jnp.reshape(jnp.asarray(samples), (-1, x.shape[1])).astype(x.dtype)
    xs, valid, chunk = pad_to_chunks(x, chunk)
    sq = jnp.sum(xs**2, 1)
    idx = jnp.arange(xs.shape[0])
    ysq = jnp.sum(y**2, 1)

    def body(carry, block):
        best, arg = carry
        xc, sqc, ic, vc = block
        d2 = jnp.maximum(ysq[:, None] - 2 * y @ xc.T + sqc[None, :], 0.0)
        d2 = jnp.where(vc[None, :], d2, jnp.inf)
        both = jnp.concatenate([best, d2], axis=1)
        both_idx = jnp.concatenate([arg, jnp.broadcast_to(ic, d2.shape)], axis=1)
        neg, pos = jax.lax.top_k(-both, 2)
        return (-neg, jnp.take_along_axis(both_idx, pos, axis=1)), None

    q = y.shape[0]
    init = (jnp.full((q, 2), jnp.inf, x.dtype), jnp.zeros((q, 2), idx.dtype))
    blocks = (
        xs.reshape(-1, chunk, x.shape[1]),
        sq.reshape(-1, chunk),
        idx.reshape(-1, chunk),
        valid.reshape(-1, chunk),
    )
    (best, arg), _ = jax.lax.scan(body, init, blocks)
    return jnp.sqrt(best), arg[:, 0]


def memorized_fraction(
    samples: Any, data: Any, *, ratio: float = 1.0 / 3.0, chunk_size: int = DEFAULT_CHUNK
) -> jax.Array:
    """Fraction of samples that copy a training point: ``d_1 < ratio * d_2`` (Gu et al. 2023's
    rule, ``ratio = 1/3``)."""
    _checks.check_positive("ratio", ratio)
    dist, _ = nearest_neighbours(samples, data, chunk_size=chunk_size)
    return jnp.mean((dist[:, 0] < ratio * dist[:, 1]).astype(dist.dtype))


def mmd(x: Any, y: Any, *, bandwidth: float | jax.Array) -> jax.Array:
    """Unbiased ``MMD^2`` between samples ``x [m, ...]`` and ``y [n, ...]`` (module docstring),
    Gaussian kernel of width ``bandwidth``.

    Raises:
      ValueError: fewer than 2 points on a side, mismatched point shapes, a bad bandwidth.
    """
    event = check_data("x", x)
    check_data("y", y)
    if tuple(np.shape(y)[1:]) != event:
        raise ValueError(f"y: expected points of shape {event} (as x), got {np.shape(y)[1:]}")
    for name, v in (("x", x), ("y", y)):
        if np.shape(v)[0] < 2:
            raise ValueError(f"{name}: expected at least 2 points, got shape {np.shape(v)}")
    _checks.check_positive("bandwidth", bandwidth)
    x, y = _flat(jnp.asarray(x)), _flat(jnp.asarray(y))

    def gram(a, b):
        d2 = jnp.sum(a**2, 1)[:, None] - 2 * a @ b.T + jnp.sum(b**2, 1)[None, :]
        return jnp.exp(-jnp.maximum(d2, 0.0) / (2 * bandwidth**2))

    m, n = x.shape[0], y.shape[0]
    kxx = (jnp.sum(gram(x, x)) - m) / (m * (m - 1))  # the diagonal is exactly 1
    kyy = (jnp.sum(gram(y, y)) - n) / (n * (n - 1))
    return kxx + kyy - 2 * jnp.mean(gram(x, y))


def excess_risk(
    score: Callable,
    data: Any,
    process: Any,
    t: float | jax.Array,
    *,
    key: jax.Array,
    n_noise: int = 64,
) -> tuple[jax.Array, jax.Array]:
    """Monte Carlo ``R(s) - R(s*) = (1/n) sum_i E |s(Y_i) - s*(Y_i)|^2``, ``Y_i ~ N(mu_t x_i,
    sigma_t^2 I)`` (module docstring), exact in the sum over ``i`` and ``n_noise`` draws each.

    Returns:
      ``(estimate, standard error)``.
    """
    _checks.check_callable("score", score)
    event = check_data("data", data)
    check_process(process)
    check_time("t", t, process)
    n_noise = _checks.check_positive_int("n_noise", n_noise)
    _checks.check_key("key", key)
    data = jnp.asarray(data)
    star = empirical_score(data, process)
    mu, sigma = process.mean_scale(t), process.std(t)
    z = jax.random.normal(key, (n_noise,) + data.shape, data.dtype)
    y = (mu * data[None] + sigma * z).reshape((-1,) + event)
    err = jnp.sum(_flat(score(t, y) - star(t, y)) ** 2, axis=1).reshape(n_noise, -1)
    per_point_var = jnp.var(err, axis=0, ddof=1) if n_noise > 1 else jnp.zeros(err.shape[1])
    n = data.shape[0]
    return jnp.mean(err), jnp.sqrt(jnp.sum(per_point_var) / (n**2 * n_noise))
