"""Scores of the noised data law ``p_t = Law(mu_t X_0 + sigma_t Z)``: the empirical optimal score
of a finite dataset (streamed over data chunks) and Gaussian closed forms.

For data ``x_1 .. x_n``, ``p_t^N = (1/n) sum_i N(mu_t x_i, sigma_t^2 I)`` and the minimizer of
denoising score matching at time ``t`` is its score

    s*(y) = grad log p_t^N(y) = (mu_t sum_i alpha_i(y) x_i - y) / sigma_t^2,
    alpha(y) = softmax_i(-|y - mu_t x_i|^2 / (2 sigma_t^2)),

with the denoiser ``E[X_0 | X_t = y] = sum_i alpha_i(y) x_i`` (Tweedie's formula). The logits
are ``(mu_t <y, x_i> - mu_t^2 |x_i|^2 / 2) / sigma_t^2`` up to a per-query constant: one
``[queries, chunk]`` matrix product per data chunk, folded into a running (max, sum, weighted
sum) so that no ``[queries, n]`` array exists (memory ``O(queries x chunk)``). Its Jacobian is
``(-I + mu_t^2 Cov_alpha(x) / sigma_t^2) / sigma_t^2``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks
from ._processes import check_process, check_time

DEFAULT_CHUNK = 2048


def check_data(name: str, data: Any) -> tuple[int, ...]:
    """Raises unless ``data`` is a non-empty finite ``[n, ...]`` array; returns its event shape."""
    _checks.check_array(name, data, ndim=tuple(range(1, 9)))
    shape = tuple(np.shape(data))
    if shape[0] < 1:
        raise ValueError(f"{name}: expected [n, ...] with n >= 1 points, got shape {shape}")
    dtype = data.dtype if hasattr(data, "dtype") else np.asarray(data).dtype
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{name}: expected a float array, got dtype {dtype}")
    return shape[1:]


def check_event_shape(name: str, shape: Any) -> tuple[int, ...]:
    """Returns ``shape`` as a tuple of positive ints; raises otherwise."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)):
        raise ValueError(
            f"{name}: expected a tuple of positive ints (one point's shape), got {shape!r}"
        )
    return tuple(_checks.check_positive_int(f"{name}[{i}]", e) for i, e in enumerate(shape))


def check_queries(name: str, y: Any, event: tuple[int, ...]) -> None:
    shape = tuple(np.shape(y)) if hasattr(y, "shape") else None
    if shape is None or len(shape) < len(event) or shape[len(shape) - len(event) :] != event:
        got = shape if shape is not None else type(y).__name__
        raise ValueError(
            f"{name}: expected queries of shape [..., {', '.join(map(str, event))}] (the data's "
            f"event shape {event}), got {got}"
        )


def pad_to_chunks(flat: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array, int]:
    """``flat [n, D]`` zero-padded to a multiple of ``min(chunk, n)`` rows: ``(padded, valid
    [n_pad] bool, chunk)``."""
    n = flat.shape[0]
    chunk = min(chunk, n)
    pad = (-n) % chunk
    padded = jnp.concatenate([flat, jnp.zeros((pad, flat.shape[1]), flat.dtype)])
    return padded, jnp.arange(n + pad) < n, chunk


def _moments(y, xs, sq, logw, mu, sigma2, chunk):
    """Running ``(max logit, sum exp, sum exp * x)`` over data chunks for queries ``y [q, D]``
    (``logw``: log weights, ``-inf`` for padding and zero-weight points)."""
    q, dim = y.shape
    n_chunks = xs.shape[0] // chunk
    xs = xs.reshape(n_chunks, chunk, dim)
    sq, logw = sq.reshape(n_chunks, chunk), logw.reshape(n_chunks, chunk)
    dtype = jnp.result_type(y, xs)

    def body(carry, block):
        m, s, acc = carry
        xc, sqc, lw = block
        logits = (mu * (y @ xc.T) - 0.5 * mu**2 * sqc[None, :]) / sigma2 + lw[None, :]
        m_new = jnp.maximum(m, jnp.max(logits, axis=1))
        safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)  # a chunk of zero weights only
        scale = jnp.exp(m - safe)
        p = jnp.exp(logits - safe[:, None])
        return (m_new, s * scale + p.sum(1), acc * scale[:, None] + p @ xc), None

    init = (jnp.full(q, -jnp.inf, dtype), jnp.zeros(q, dtype), jnp.zeros((q, dim), dtype))
    (m, s, acc), _ = jax.lax.scan(body, init, (xs, sq, logw))
    safe = jnp.where(jnp.isfinite(m), m, 0.0)
    return safe, s, acc


@jax.tree_util.register_pytree_node_class
class EmpiricalScore:
    """The empirical optimal score ``s*(t, y)`` of a dataset (module docstring); a pytree (pass
    it through `jax.jit` as an argument) and a callable ``score(t, y)``.

    ``y`` is ``[..., *event]`` (any leading batch axes), ``t`` a scalar in ``(0, T]``.
    """

    def __init__(self, data, sq, logw, process, n, chunk, event):
        self.data, self.sq, self.logw, self.process = data, sq, logw, process
        self.n, self.chunk, self.event = n, chunk, event

    def tree_flatten(self):  # the process is static (hashable floats): its T bounds t
        return (self.data, self.sq, self.logw), (self.process, self.n, self.chunk, self.event)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    def _stats(self, t, y):
        check_time("t", t, self.process)
        check_queries("y", y, self.event)
        t = jnp.asarray(t, self.data.dtype)
        batch = jnp.shape(y)[: jnp.ndim(y) - len(self.event)]
        y2 = jnp.reshape(y, (-1, math.prod(self.event))).astype(self.data.dtype)
        mu, sigma = self.process.mean_scale(t), self.process.std(t)
        m, s, acc = _moments(y2, self.data, self.sq, self.logw, mu, sigma**2, self.chunk)
        return batch, y2, mu, sigma, m, s, acc

    def denoiser(self, t, y):
        """``E[X_0 | X_t = y] = sum_i alpha_i(y) x_i`` ``[..., *event]``."""
        batch, _, _, _, _, s, acc = self._stats(t, y)
        return (acc / s[:, None]).reshape(batch + self.event)

    def __call__(self, t, y):
        """``s*(t, y) = (mu_t E[X_0 | y] - y) / sigma_t^2`` ``[..., *event]``."""
        batch, y2, mu, sigma, _, s, acc = self._stats(t, y)
        return ((mu * acc / s[:, None] - y2) / sigma**2).reshape(batch + self.event)

    def log_density(self, t, y):
        """``log p_t^N(y)`` ``[...]`` (the Gaussian mixture's log density)."""
        batch, y2, mu, sigma, m, s, _ = self._stats(t, y)
        dim = y2.shape[1]
        quad = jnp.sum(y2**2, axis=1) / (2 * sigma**2)
        log_total = jax.scipy.special.logsumexp(self.logw)
        out = m + jnp.log(s) - quad - log_total - 0.5 * dim * jnp.log(2 * jnp.pi * sigma**2)
        return out.reshape(batch)

    def __repr__(self):
        return f"EmpiricalScore(n={self.n}, event={self.event}, process={self.process!r})"


def empirical_score(
    data: Any, process: Any, *, weights: Any = None, chunk_size: int = DEFAULT_CHUNK
) -> EmpiricalScore:
    """The exact minimizer of denoising score matching on ``data``: ``s*(t, y)`` (module
    docstring), with ``.denoiser(t, y)`` and ``.log_density(t, y)``.

    Args:
      data: ``[n, ...]`` float training points (finite).
      process: a forward process (`OrnsteinUhlenbeck`, `VariancePreserving`,
        `VarianceExploding`).
      weights: optional ``[n]`` non-negative weights of the points (the empirical law
        ``sum_i w_i delta_{x_i} / sum_i w_i``); a 0/1 mask selects a subset, so datasets of
        different sizes are one `jax.vmap` over masks.
      chunk_size: data points per streamed block (memory ``O(queries x chunk_size)``); the
        data are padded to a multiple of it.

    Returns:
      An `EmpiricalScore` ``score(t, y)``: ``y [..., *event] -> [..., *event]``.

    Raises:
      ValueError: data not a non-empty finite float ``[n, ...]`` array, an invalid process, a
        non-positive chunk size; at call time, ``t`` outside ``(0, T]`` or queries whose trailing
        shape is not the data's event shape.
    """
    event = check_data("data", data)
    check_process(process)
    chunk = _checks.check_positive_int("chunk_size", chunk_size)
    data = jnp.asarray(data)
    n = data.shape[0]
    flat, valid, chunk = pad_to_chunks(data.reshape(n, -1), chunk)
    sq = jnp.sum(flat**2, axis=1)
    if weights is None:
        w = jnp.ones(n, flat.dtype)
    else:
        _checks.check_array("weights", weights, ndim=1)
        if np.shape(weights) != (n,):
            raise ValueError(
                f"weights: expected shape ({n},) (one per point), got {np.shape(weights)}"
            )
        wc = _checks.concrete(weights)
        if wc is not None and (np.any(wc < 0) or not np.sum(wc) > 0):
            raise ValueError("weights: expected non-negative weights with a positive sum")
        w = jnp.asarray(weights, flat.dtype)
    w = jnp.concatenate([w, jnp.zeros(flat.shape[0] - n, flat.dtype)])
    logw = jnp.where(valid & (w > 0), jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    return EmpiricalScore(flat, sq, logw, process, n, chunk, event)


def _check_cov(mean, cov):
    _checks.check_array("mean", mean, ndim=1)
    _checks.check_array("cov", cov, ndim=2)
    d = np.shape(mean)[0]
    if np.shape(cov) != (d, d):
        raise ValueError(f"cov: expected shape ({d}, {d}) (mean is [{d}]), got {np.shape(cov)}")


def gaussian_score(mean: Any, cov: Any, process: Any):
    """Score of ``p_t`` for Gaussian data ``N(m, C)``: ``p_t = N(mu_t m, mu_t^2 C + sigma_t^2 I)``,

        s(t, y) = -(mu_t^2 C + sigma_t^2 I)^{-1} (y - mu_t m)    (y [..., d] -> [..., d]).

    Raises:
      ValueError: ``mean`` not ``[d]``, ``cov`` not ``[d, d]``, an invalid process.
    """
    _check_cov(mean, cov)
    check_process(process)
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    eye = jnp.eye(mean.shape[0], dtype=cov.dtype)

    def score(t, y):
        check_time("t", t, process)
        check_queries("y", y, mean.shape)
        mu, sigma = process.mean_scale(t), process.std(t)
        prec = jnp.linalg.inv(mu**2 * cov + sigma**2 * eye)
        lead = (1,) * (jnp.ndim(y) - 1)
        return -(y - jnp.reshape(mu * mean, lead + mean.shape)) @ prec

    return score


def gaussian_mixture_score(weights: Any, means: Any, covs: Any, process: Any):
    """Score of ``p_t`` for data ``sum_k w_k N(m_k, C_k)``: ``p_t`` is the mixture of
    ``N(mu_t m_k, mu_t^2 C_k + sigma_t^2 I)`` and ``s = sum_k r_k(y) s_k(y)`` with ``r`` the
    posterior responsibilities (log-sum-exp) and ``s_k`` the components' `gaussian_score`.

    Args:
      weights: ``[K]`` on the simplex; means: ``[K, d]``; covs: ``[K, d, d]``.
    """
    _checks.check_array("means", means, ndim=2)
    _checks.check_array("covs", covs, ndim=3)
    k, d = np.shape(means)
    _checks.check_simplex("weights", weights, k)
    if np.shape(covs) != (k, d, d):
        raise ValueError(
            f"covs: expected shape ({k}, {d}, {d}) (means are [{k}, {d}]), got {np.shape(covs)}"
        )
    check_process(process)
    w, means, covs = jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs)
    eye = jnp.eye(d, dtype=covs.dtype)

    def score(t, y):
        check_time("t", t, process)
        check_queries("y", y, (d,))
        mu, sigma = process.mean_scale(t), process.std(t)
        sig = mu**2 * covs + sigma**2 * eye[None]  # [K, d, d]
        prec = jnp.linalg.inv(sig)
        lead = (1,) * (jnp.ndim(y) - 1)
        diff = y[..., None, :] - jnp.reshape(mu * means, lead + means.shape)  # [..., K, d]
        sol = jnp.einsum("kij,...kj->...ki", prec, diff)  # Sigma_k^{-1} (y - mu m_k)
        logdet = jnp.linalg.slogdet(sig)[1]
        logp = jnp.reshape(jnp.log(w) - 0.5 * logdet, lead + w.shape) - 0.5 * jnp.sum(
            diff * sol, -1
        )
        r = jax.nn.softmax(logp, axis=-1)
        return -jnp.sum(r[..., None] * sol, axis=-2)

    return score
