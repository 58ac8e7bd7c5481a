"""Kernel monitors, usable as observables of a flow and in a user's own training loop.

- `ntk_drift`: relative change ``|Theta_p - Theta_0|_F / |Theta_0|_F`` of the empirical NTK on a
  batch; ~0 in the lazy (kernel) regime, O(1) in the rich regime (Chizat, Oyallon and Bach,
  "On lazy training in differentiable programming", 2019).
- `kernel_alignment`: ``<K, Y Y^T>_F / (|K|_F |Y Y^T|_F)`` (Cristianini et al. 2002), which grows
  as the NTK aligns with the task (Baratin et al. 2021).
- `effective_rank`: ``exp(-sum_i p_i log p_i)``, ``p_i = l_i / sum_j l_j`` over the eigenvalues
  of a PSD kernel (Roy and Vetterli 2007), or the participation ratio ``(sum l)^2 / sum l^2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from ..models import _checks
from .empirical import METHODS, empirical_ntk


def ntk_drift(
    apply: Callable, params0, *, method: str = "auto", trace_axes: Sequence[int] = (-1,)
) -> Callable:
    """``drift(params, x) = |Theta_params(x, x) - Theta_params0(x, x)|_F / |Theta_params0|_F``."""
    _checks.check_callable("apply", apply)
    _checks.check_finite_tree("params0", params0)
    _checks.check_option("method", method, METHODS)

    def drift(params, x):
        k0 = empirical_ntk(apply, params0, x, method=method, trace_axes=trace_axes)
        k = empirical_ntk(apply, params, x, method=method, trace_axes=trace_axes)
        return jnp.linalg.norm((k - k0).ravel()) / jnp.linalg.norm(k0.ravel())

    return drift


def kernel_alignment(kernel: jax.Array, y: jax.Array) -> jax.Array:
    """Uncentred alignment ``<K, Y Y^T> / (|K| |Y Y^T|)`` of ``K [n, n]`` with ``y [n(, k)]``."""
    _checks.check_array("kernel", kernel)
    _checks.check_array("y", y)
    kernel, y = jnp.asarray(kernel), jnp.asarray(y)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel: expected a square matrix [n, n], got {kernel.shape}")
    if y.shape[:1] != kernel.shape[:1] or y.ndim > 2:
        raise ValueError(
            f"y: expected shape [{kernel.shape[0]}] or [{kernel.shape[0]}, k], got {y.shape}"
        )
    yy = y.reshape(y.shape[0], -1)
    yy = yy @ yy.T
    return jnp.sum(kernel * yy) / (jnp.linalg.norm(kernel) * jnp.linalg.norm(yy))


def effective_rank(kernel: jax.Array, *, kind: str = "entropy") -> jax.Array:
    """Effective rank of a PSD ``kernel [n, n]``: ``"entropy"`` or ``"participation"``."""
    _checks.check_array("kernel", kernel)
    kernel = jnp.asarray(kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel: expected a square matrix [n, n], got {kernel.shape}")
    if kind not in ("entropy", "participation"):
        raise ValueError(f"kind: expected 'entropy' or 'participation', got {kind!r}")
    lam = jnp.maximum(jnp.linalg.eigvalsh((kernel + kernel.T) / 2), 0.0)
    if kind == "participation":
        return jnp.sum(lam) ** 2 / jnp.sum(lam**2)
    p = lam / jnp.sum(lam)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))
