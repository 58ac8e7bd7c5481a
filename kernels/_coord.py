r"""The muP coordinate check: how every layer's output coordinates scale with width in training.

Yang and Hu ("Tensor Programs IV", 2021) and microsoft/mup check a parametrization by training
networks of several widths for a few steps and plotting the mean absolute coordinate of each
layer's output against width: under muP the updates ``Delta h_l = h_l(t) - h_l(0)`` stay
``Theta(1)`` in width, under the standard parametrization with one SGD learning rate the hidden
updates grow like ``sqrt(width)`` and the output's like ``width``. `coord_check` returns these
numbers and their log-log slopes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..models import _checks
from .features import check_batch_pair, check_loss


class CoordCheck(NamedTuple):
    """Result of `coord_check` (``W`` widths, ``S = steps``, ``K`` layers; means over seeds).

    Attributes:
      widths: ``[W]``.
      init: mean ``|h_l(0)|`` per coordinate, ``[W, K]``.
      trained: mean ``|h_l(t)|`` after step ``t = 1..S``, ``[W, S, K]``.
      delta: mean ``|h_l(t) - h_l(0)|``, ``[W, S, K]``.
      init_slopes: least-squares slope of ``log init`` against ``log width``, ``[K]``.
      slopes: slope of ``log delta`` against ``log width``, ``[S, K]``.
      loss: the training loss after each step, ``[W, S]``.
    """

    widths: np.ndarray
    init: np.ndarray
    trained: np.ndarray
    delta: np.ndarray
    init_slopes: np.ndarray
    slopes: np.ndarray
    loss: np.ndarray


def _slope(widths: np.ndarray, values: np.ndarray) -> np.ndarray:
    lw = np.log(widths)
    lw = lw - lw.mean()
    lv = np.log(values)
    return np.tensordot(lw, lv - lv.mean(axis=0), axes=1) / np.sum(lw**2)


def _mean_abs(features) -> jax.Array:
    return jnp.concatenate(
        [
            jnp.mean(jnp.abs(jnp.reshape(a, (a.shape[0], -1))), axis=1)
            for a in jax.tree_util.tree_leaves(features)
        ]
    )


def coord_check(
    make_model: Callable[[int], Any],
    widths: Sequence[int],
    *,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch: tuple[jax.Array, jax.Array],
    key: jax.Array,
    seeds: int = 4,
    loss: str | Callable = "mse",
) -> CoordCheck:
    """Mean absolute coordinates of every layer at init and after each of ``steps`` steps.

    For each width ``n`` the model ``make_model(n)`` (a flowax `Model` whose ``apply`` returns
    features, e.g. `flowax.models.mlp`) is initialized from ``seeds`` keys split from ``key``,
    trained on the full ``batch`` for ``steps`` steps of ``optimizer`` (a ``lax.scan``, one
    ``vmap`` over the seeds, one compile per width), and ``h_l`` is measured on ``batch``'s
    inputs after every step.

    Args:
      make_model: ``width -> Model``.
      widths: at least two increasing positive ints.
      optimizer: an optax ``GradientTransformation`` (the same for every width: the point of
        the check).
      steps: number of steps (positive int).
      batch: ``(x, y)``.
      key: PRNG key for the initializations (the same seeds at every width).
      seeds: number of initializations averaged (positive int).
      loss: ``"mse"`` or ``loss(pred, y) -> scalar``.

    Returns:
      `CoordCheck` (NumPy arrays).
    """
    _checks.check_callable("make_model", make_model)
    try:
        ws = [int(w) for w in widths]
        ok = len(ws) >= 2 and all(w > 0 and w == v for w, v in zip(ws, widths, strict=True))
        ok = ok and all(a < b for a, b in zip(ws, ws[1:], strict=False))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"widths: expected at least two increasing positive ints, got {widths!r}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"optimizer: expected an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    steps = _checks.check_positive_int("steps", steps)
    seeds = _checks.check_positive_int("seeds", seeds)
    _checks.check_key("key", key)
    x, y = check_batch_pair(batch)
    loss_fn = check_loss(loss)
    keys = jax.random.split(key, seeds)

    rows = []
    for w in ws:
        model = make_model(w)

        def run(k, model=model):
            params = model.init(k)

            def measure(p):
                pred, feats = model.apply(p, x, return_features=True)
                return loss_fn(pred, y), feats

            h0 = measure(params)[1]

            def step(carry, _):
                p, s = carry
                grads = jax.grad(lambda q: measure(q)[0])(p)
                upd, s = optimizer.update(grads, s, p)
                p = optax.apply_updates(p, upd)
                value, h = measure(p)
                diff = jax.tree_util.tree_map(jnp.subtract, h, h0)
                return (p, s), (_mean_abs(h), _mean_abs(diff), value)

            _, (trained, delta, values) = jax.lax.scan(
                step, (params, optimizer.init(params)), None, length=steps
            )
            return _mean_abs(h0), trained, delta, values

        out = jax.jit(jax.vmap(run))(keys)
        rows.append([np.asarray(a).mean(axis=0) for a in out])
    init, trained, delta, values = (np.stack(r) for r in zip(*rows, strict=True))
    warr = np.asarray(ws, dtype=float)
    return CoordCheck(
        widths=np.asarray(ws),
        init=init,
        trained=trained,
        delta=delta,
        init_slopes=_slope(warr, init),
        slopes=_slope(warr, delta),
        loss=values,
    )
