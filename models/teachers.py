"""Teachers and synthetic data sets, every draw from an explicit key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._model import get_activation


class Dataset(NamedTuple):
    """A regression data set ``x: [n, d_in]``, ``y: [n, d_out]`` and the teacher that made it."""

    x: jax.Array
    y: jax.Array
    teacher: jax.Array


def _orthonormal(key, n, k, dtype):
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, k), dtype))
    return q * jnp.sign(jnp.diagonal(r))[None, :]


def linear_teacher(
    key: jax.Array,
    *,
    d_in: int,
    d_out: int,
    n: int,
    singular_values: Sequence[float] = (3.0, 2.0, 1.0),
    noise_std: float = 0.0,
    whiten: bool = True,
) -> Dataset:
    """A low-rank linear teacher ``y = x @ W* + noise``, ``W* = U diag(s) V^T`` of rank ``len(s)``.

    With ``whiten=True`` the inputs are rescaled so that ``x^T x / n = I`` exactly (needs
    ``n >= d_in``); then for the loss ``|f(x) - y|^2 / (2n)`` the gradient flow of a deep linear
    network depends on the data only through ``W*`` (Saxe et al. 2014), and the singular values
    ``s_k`` are learned one at a time from small initializations.

    Returns:
      ``Dataset(x [n, d_in], y [n, d_out], teacher W* [d_in, d_out])``.
    """
    _checks.check_key("key", key)
    d_in = _checks.check_positive_int("d_in", d_in)
    d_out = _checks.check_positive_int("d_out", d_out)
    n = _checks.check_positive_int("n", n)
    _checks.check_positive("noise_std", noise_std, allow_zero=True)
    sv = _checks.check_array("singular_values", singular_values, ndim=1)
    if sv is not None and np.any(sv <= 0):
        raise ValueError(f"singular_values: expected positive values, got {sv.tolist()}")
    s = jnp.asarray(singular_values, jnp.result_type(float))
    rank = s.shape[0]
    if rank > min(d_in, d_out):
        raise ValueError(
            f"singular_values: expected at most min(d_in, d_out) = {min(d_in, d_out)} values, "
            f"got {rank}"
        )
    if whiten and n < d_in:
        raise ValueError(f"n: whitening needs n >= d_in = {d_in}, got n = {n}")
    dtype = jnp.result_type(float)
    ku, kv, kx, ke = jax.random.split(key, 4)
    w_star = (_orthonormal(ku, d_in, rank, dtype) * s[None, :]) @ _orthonormal(
        kv, d_out, rank, dtype
    ).T
    x = jax.random.normal(kx, (n, d_in), dtype)
    if whiten:
        q, r = jnp.linalg.qr(x)
        x = jnp.sqrt(n) * q * jnp.sign(jnp.diagonal(r))[None, :]
    y = x @ w_star + noise_std * jax.random.normal(ke, (n, d_out), dtype)
    return Dataset(x, y, w_star)


def multi_index_teacher(
    key: jax.Array,
    *,
    d_in: int,
    n: int,
    k: int = 1,
    link: str | Callable = "relu",
    noise_std: float = 0.0,
) -> Dataset:
    """A multi-index teacher ``y = sum_j g(<u_j, x>) / sqrt(k) + noise``, ``x ~ N(0, I_d)``.

    ``u_1..u_k`` are orthonormal directions (``teacher: [d_in, k]``); ``k = 1`` is a single-index
    model. ``link`` is an activation name or an elementwise callable ``g``.

    Returns:
      ``Dataset(x [n, d_in], y [n, 1], teacher U [d_in, k])``.
    """
    _checks.check_key("key", key)
    d_in = _checks.check_positive_int("d_in", d_in)
    n = _checks.check_positive_int("n", n)
    k = _checks.check_positive_int("k", k)
    _checks.check_positive("noise_std", noise_std, allow_zero=True)
    if not 1 <= k <= d_in:
        raise ValueError(f"k: expected 1 <= k <= d_in = {d_in}, got {k}")
    try:
        g = get_activation(link)
    except ValueError as e:
        raise ValueError("link" + str(e).removeprefix("activation")) from None
    dtype = jnp.result_type(float)
    ku, kx, ke = jax.random.split(key, 3)
    u = _orthonormal(ku, d_in, k, dtype)
    x = jax.random.normal(kx, (n, d_in), dtype)
    y = jnp.sum(g(x @ u), axis=1, keepdims=True) / jnp.sqrt(k)
    y = y + noise_std * jax.random.normal(ke, (n, 1), dtype)
    return Dataset(x, y, u)
