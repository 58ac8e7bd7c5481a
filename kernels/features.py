r"""Feature updates and their alignment with the backward pass, layer by layer.

For a network with features ``f_l`` (the output of layer ``l`` on a batch, ``l = 0..K-1`` in
depth order), a loss ``L``, the backward pass ``b_l = dL/df_l`` and a parameter update
``delta theta`` (e.g. ``-eta_k grad_{theta_k} L`` per layer ``k``), the first-order feature
update is ``delta f_l = (df_l/d theta) delta theta`` (a jvp) and Chizat and Netrapalli ("Steering
deep feature learning with backward aligned feature updates", 2024) measure

    cos theta_l = -<b_l, delta f_l> / (|b_l| |delta f_l|),      speed_l = |delta f_l| / |f_l|.

**The feature-speed identity.** If every path from the parameters ``theta_k`` of layers
``k <= l`` to the loss passes through ``f_l`` (true for every layer output of an MLP and for
the residual stream of a ResNet), then ``grad_{theta_k} L = (df_l/d theta_k)^T b_l`` for
``k <= l``, while ``df_l/d theta_k = 0`` for ``k > l``. Hence, for ``delta theta_k = -eta_k
grad_{theta_k} L``,

    -<b_l, delta f_l> = -sum_{k<=l} <(df_l/d theta_k)^T b_l, delta theta_k>
                      = sum_{k<=l} eta_k |grad_{theta_k} L|^2,

that is ``|delta f_l| |b_l| cos theta_l = sum_{k<=l} eta_k |grad_{theta_k} L|^2``: the speed of
the features is fixed by the gradient norms of the layers below and the angle ``theta_l``.
At the output (``f = `` the predictions), ``delta f = -Theta_eta b`` with the learning-rate
weighted NTK ``Theta_eta = sum_k eta_k J_k J_k^T``, so ``cos theta = b^T Theta_eta b /
(|b| |Theta_eta b|)``.

Models expose their features through ``apply(params, x, *, perturb=None,
return_features=False)`` (flowax's `mlp`, `deep_linear`, `resnet`; flax modules through
``from_flax(..., features=...)``): ``return_features=True`` returns ``(y, features)``, a tuple
of arrays with a leading layer axis each, and ``perturb`` (same structure) is added to each
feature where it is computed, so ``b = dL/d perturb`` at 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks
from ..models._model import check_params_shapes

PyTree = Any
LOSSES = ("mse",)


def _mse(pred, y):
    return 0.5 * jnp.mean(jnp.sum(jnp.reshape(pred - y, (pred.shape[0], -1)) ** 2, axis=1))


def check_loss(loss: str | Callable) -> Callable:
    """``loss(pred, y) -> scalar``: ``"mse"`` is ``0.5 mean_i |pred_i - y_i|^2``."""
    if callable(loss):
        return loss
    _checks.check_option("loss", loss, LOSSES)
    return _mse


def check_batch_pair(batch: Any) -> tuple[jax.Array, jax.Array]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError(
            f"batch: expected a pair (x, y) of arrays, got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    _checks.check_array("batch[0] (x)", batch[0])
    _checks.check_array("batch[1] (y)", batch[1])
    return batch[0], batch[1]


def features_fn(apply: Callable, x: jax.Array) -> tuple[Callable, PyTree]:
    """``feats(params, perturb) -> (y, features)`` of a features-aware ``apply`` on ``x``."""
    _checks.check_callable("apply", apply)

    def feats(params, perturb=None):
        return apply(params, x, perturb=perturb, return_features=True)

    return feats


def _zeros_like_features(feats, params) -> PyTree:
    try:
        shapes = jax.eval_shape(feats, params)[1]
    except TypeError as e:
        raise ValueError(
            "apply: expected apply(params, x, *, perturb=None, return_features=False) returning "
            f"(y, features) when return_features=True (flowax mlp / resnet, from_flax(..., "
            f"features=...)); calling it failed with: {e}"
        ) from None
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def per_layer(fn: Callable, *trees: PyTree) -> jax.Array:
    """``fn`` of each leaf's layers reduced over all but the leading axis, concatenated: ``[K]``."""
    leaves = [jax.tree_util.tree_leaves(t) for t in trees]
    return jnp.concatenate(
        [
            fn(*(jnp.reshape(a, (a.shape[0], -1)) for a in group))
            for group in zip(*leaves, strict=True)
        ]
    )


def _dot(a, b):
    return jnp.sum(a * b, axis=1)


def _norm(a):
    return jnp.sqrt(jnp.sum(a * a, axis=1))


class FeatureUpdates(NamedTuple):
    """Per-layer feature quantities of `feature_updates` (``K`` = number of layers).

    Attributes:
      loss: the loss at ``params``.
      grads: its gradient (the params' tree).
      features, backward, delta: ``f_l``, ``b_l = dL/df_l``, ``delta f_l`` (the features' tree).
      feature_norm, backward_norm, delta_norm: ``|f_l|``, ``|b_l|``, ``|delta f_l|``, ``[K]``
        (Frobenius norms over the batch).
      inner: ``-<b_l, delta f_l>``, ``[K]``.
      cos: ``cos theta_l = inner / (|b_l| |delta f_l|)``, ``[K]``.
      speed: ``|delta f_l| / |f_l|``, ``[K]``.
    """

    loss: jax.Array
    grads: PyTree
    features: PyTree
    backward: PyTree
    delta: PyTree
    feature_norm: jax.Array
    backward_norm: jax.Array
    delta_norm: jax.Array
    inner: jax.Array
    cos: jax.Array
    speed: jax.Array


def feature_updates(
    apply: Callable,
    params: PyTree,
    batch: tuple[jax.Array, jax.Array],
    updates: PyTree,
    *,
    loss: str | Callable = "mse",
) -> FeatureUpdates:
    r"""Features, backward pass and first-order feature update of every layer (see module).

    One ``jax.vjp`` (the loss's gradient in the params and in a zero perturbation of the
    features: ``b_l``) and one ``jax.jvp`` (the features and ``delta f_l`` in the direction
    ``updates``).

    Args:
      apply: ``apply(params, x, *, perturb=None, return_features=False)`` (see module).
      params: the parameters.
      batch: ``(x, y)``.
      updates: the parameter update ``delta theta`` (the params' tree and shapes), e.g.
        ``-lr * grads`` or an optax update.
      loss: ``"mse"`` (``0.5 mean_i |y_pred,i - y_i|^2``) or ``loss(y_pred, y) -> scalar``.

    Returns:
      `FeatureUpdates`.

    Examples:
      >>> model = mlp([3, 16, 16, 1])
      >>> p = model.init(jax.random.key(0))
      >>> x, y = jnp.ones((4, 3)), jnp.zeros((4, 1))
      >>> g = jax.grad(lambda q: 0.5 * jnp.mean((model.apply(q, x) - y) ** 2))(p)
      >>> out = feature_updates(model.apply, p, (x, y), jax.tree.map(lambda v: -0.1 * v, g))
      >>> out.cos.shape
      (3,)
    """
    x, y = check_batch_pair(batch)
    loss_fn = check_loss(loss)
    _checks.check_finite_tree("params", params)
    check_params_shapes(updates, params, name="updates")
    feats = features_fn(apply, x)
    zeros = _zeros_like_features(feats, params)

    def objective(p, eps):
        pred, f = feats(p, eps)
        return loss_fn(pred, y), f

    (value, features), (grads, backward) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True
    )(params, zeros)
    _, delta = jax.jvp(lambda p: feats(p, zeros)[1], (params,), (updates,))
    f_norm = per_layer(_norm, features)
    b_norm = per_layer(_norm, backward)
    d_norm = per_layer(_norm, delta)
    inner = -per_layer(_dot, backward, delta)
    return FeatureUpdates(
        loss=value,
        grads=grads,
        features=features,
        backward=backward,
        delta=delta,
        feature_norm=f_norm,
        backward_norm=b_norm,
        delta_norm=d_norm,
        inner=inner,
        cos=inner / (b_norm * d_norm),
        speed=d_norm / f_norm,
    )


def num_layers(features: PyTree) -> int:
    return int(sum(np.shape(a)[0] for a in jax.tree_util.tree_leaves(features)))
