r"""Per-layer learning rates that set each layer's relative feature update (an optax transform).

With incoming updates ``g`` (gradients, or any optimizer's direction) and per-layer rates
``eta_k >= 0``, the update ``delta theta_k = -eta_k g_k`` moves feature ``l`` by, to first order,

    delta f_l = -sum_{k<=l} eta_k u_{lk},      u_{lk} = (df_l / d theta_k) g_k

(a jvp per layer ``k``). `steer_feature_speed` chooses ``eta_0, eta_1, ...`` in depth order so
that ``|delta f_l| = target_l |f_l|`` (Chizat and Netrapalli, "Steering deep feature learning
with backward aligned feature updates", 2024, who set per-layer rates from the feature-speed
formula). Once ``eta_{<l}`` are fixed, ``a = sum_{k<l} eta_k u_{lk}`` is what the layers below
already do to ``f_l`` and ``|a + eta u_{ll}|`` over ``eta >= 0`` takes every value in
``[min_{eta>=0} |a + eta u_{ll}|, infinity)``:

* if ``|a| <= target_l |f_l|``, the target is reached by the unique ``eta_l >= 0`` (the positive
  root of ``|u|^2 eta^2 + 2 <a, u> eta + |a|^2 - T^2 = 0``);
* if ``|a| > T`` but a root is positive (``<a, u> < 0``), the smaller root is taken;
* otherwise the target is **unreachable** with non-negative rates (the layers below already
  move ``f_l`` more than asked: e.g. a small target for a deep layer after large targets for
  the first layers): ``eta_l = max(0, -<a, u>/|u|^2)``, the rate that moves ``f_l`` least, and
  the state's ``achieved`` reports the resulting speed (> target).

So target vectors that grow (or stay flat) with depth are typically reachable; decreasing ones
are reachable only as far as the lower layers' contributions cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..dynamics._rates import check_rates, scale_by_rates
from ..models import _checks
from ..models.resnet import layer_labels
from .features import _norm, _zeros_like_features, features_fn, num_layers, per_layer

PyTree = Any


class SteerState(NamedTuple):
    """State of `steer_feature_speed`: the last per-layer ``rates [K]``, the relative feature
    speeds they give to first order (``achieved [K]``), the step ``count``."""

    rates: jax.Array
    achieved: jax.Array
    count: jax.Array


def _gram(delta) -> jax.Array:
    """``G[l, k, k'] = <u_{lk}, u_{lk'}>`` from tangents stacked as ``[K(k), layers(l), ...]``."""

    def leaf(d):
        d = jnp.reshape(d, (d.shape[0], d.shape[1], -1))
        return jnp.einsum("alm,blm->lab", d, d)

    return jnp.concatenate([leaf(d) for d in jax.tree_util.tree_leaves(delta)])


def solve_rates(gram: jax.Array, target_norms: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rates ``eta [K] >= 0`` in depth order with ``|sum_{k<=l} eta_k u_{lk}| = T_l`` where
    reachable (see module); returns ``(eta, achieved norms)``."""
    k_layers = gram.shape[0]
    idx = jnp.arange(k_layers)

    def body(l, eta):
        g = gram[l]
        below = jnp.where(idx < l, eta, 0.0)
        aa = below @ g @ below
        ac = below @ g[:, l]
        cc = g[l, l]
        t2 = target_norms[l] ** 2
        disc = ac**2 - cc * (aa - t2)
        safe_cc = jnp.where(cc > 0, cc, 1.0)
        root_hi = (-ac + jnp.sqrt(jnp.maximum(disc, 0.0))) / safe_cc
        root_lo = (-ac - jnp.sqrt(jnp.maximum(disc, 0.0))) / safe_cc
        closest = jnp.maximum(0.0, -ac / safe_cc)
        e = jnp.where(aa <= t2, root_hi, jnp.where((disc >= 0) & (root_lo >= 0), root_lo, closest))
        e = jnp.where(cc > 0, e, 0.0)
        return eta.at[l].set(e)

    eta = jax.lax.fori_loop(0, k_layers, body, jnp.zeros(k_layers, gram.dtype))
    lower = jnp.tril(jnp.ones((k_layers, k_layers), gram.dtype))
    m = lower * eta[None, :]  # m[l, k] = eta_k for k <= l
    achieved = jnp.sqrt(jnp.maximum(jnp.einsum("lk,lkj,lj->l", m, gram, m), 0.0))
    return eta, achieved


def _targets(targets, k_layers: int) -> np.ndarray:
    if callable(targets):
        targets = targets(k_layers)
    try:
        t = np.asarray(targets, dtype=float)
    except (TypeError, ValueError):
        t = np.full(k_layers + 1, np.nan)  # reported below
    if t.ndim == 0:
        t = np.full(k_layers, float(t))
    if t.shape != (k_layers,) or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError(
            f"targets: expected a positive number or {k_layers} positive numbers (one per layer), "
            f"or a callable K -> such an array; got {targets!r}"
        )
    return t


def _mask(labels, k):
    return jax.tree_util.tree_map(lambda lab: (jnp.asarray(lab) == k).astype(float), labels)


def steer_feature_speed(
    targets: float | Any | Callable[[int], Any],
    apply: Callable,
    *,
    labels: PyTree = None,
    every_step: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Per-layer rates that make each layer's relative feature update equal its target.

    An optax transformation used **as the learning rate** (like ``optax.scale_by_learning_rate``:
    it returns ``-eta_k g_k``, the sign included), in any chain, e.g.
    ``optax.chain(optax.clip_by_global_norm(1.0), steer_feature_speed(0.1, model.apply))``.
    Its ``update(updates, state, params, *, x)`` needs ``params`` and the input batch ``x`` as
    an extra argument (optax passes extra arguments through ``optax.chain``). It runs ``K``
    jvps (one per layer; see module for what is reachable).

    Args:
      targets: the relative feature speeds ``|delta f_l| / |f_l|``: one number for all layers,
        ``K`` numbers, or a rule ``K -> [K]`` (e.g. ``lambda K: 0.1 / np.sqrt(K) * np.ones(K)``).
      apply: the model's features-aware ``apply`` (see `flowax.kernels.feature_updates`).
      labels: integer layer labels of the params (a prefix tree; layer ``k`` produces feature
        ``k``); default `flowax.models.layer_labels` (flowax mlp and resnet).
      every_step: recompute the rates at every step (default), or only at the first and keep
        them (rates "at initialization").

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state `SteerState`.
    """
    _checks.check_callable("apply", apply)
    every_step = _checks.check_bool("every_step", every_step)
    if not (callable(targets) or np.ndim(targets) <= 1):
        raise ValueError(f"targets: expected a number, a vector or a callable, got {targets!r}")

    def init(params):
        lab = layer_labels(params) if labels is None else labels
        check_rates(lab, params, name="labels")
        k = int(max(np.max(np.asarray(v)) for v in jax.tree_util.tree_leaves(lab))) + 1
        _targets(targets, k)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return SteerState(jnp.zeros(k, dtype), jnp.zeros(k, dtype), jnp.zeros((), jnp.int32))

    def compute(updates, params, x):
        lab = layer_labels(params) if labels is None else labels
        feats = features_fn(apply, x)
        zeros = _zeros_like_features(feats, params)
        k_layers = num_layers(zeros)
        target = jnp.asarray(
            _targets(targets, k_layers), jnp.result_type(*jax.tree_util.tree_leaves(params))
        )
        f = lambda p: feats(p, zeros)[1]  # noqa: E731

        def tangent(k):
            return jax.jvp(f, (params,), (scale_by_rates(_mask(lab, k), updates),))[1]

        primal = f(params)
        delta = jax.lax.map(tangent, jnp.arange(k_layers))
        f_norm = per_layer(_norm, primal)
        eta, achieved = solve_rates(_gram(delta), target * f_norm)
        return eta.astype(target.dtype), (achieved / f_norm).astype(target.dtype)

    def update(updates, state, params=None, *, x=None, **extra):
        del extra
        if params is None or x is None:
            raise ValueError(
                "steer_feature_speed: update needs params and the input batch, "
                "update(updates, state, params, x=x)"
            )
        lab = layer_labels(params) if labels is None else labels
        if every_step:
            eta, achieved = compute(updates, params, x)
        else:
            eta, achieved = jax.lax.cond(
                state.count == 0,
                lambda: compute(updates, params, x),
                lambda: (state.rates, state.achieved),
            )
        rates = jax.tree_util.tree_map(lambda l_: -eta[jnp.asarray(l_)], lab)
        new = scale_by_rates(rates, updates)
        return new, SteerState(eta, achieved, state.count + 1)

    return optax.GradientTransformationExtraArgs(init, update)
