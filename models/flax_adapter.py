"""Adapters from flax modules (linen and nnx) to the `Model` contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._model import Model


def _scale_tree(tree, scale):
    return jax.tree_util.tree_map(lambda p: scale * p, tree)


def _check_x(x, example_shape):
    shape = tuple(np.shape(x))
    if len(shape) != len(example_shape) or shape[1:] != tuple(example_shape[1:]):
        want = "[n, " + ", ".join(str(d) for d in example_shape[1:]) + "]"
        raise ValueError(f"x: expected a batch of shape {want}, got shape {shape}")


def from_flax(module: Any, x_example: jax.Array) -> Model:
    """Wraps a flax module as ``Model(init, apply)``.

    * A ``flax.linen.Module``: ``init(key, scale) = scale * module.init(key, x)["params"]`` and
      ``apply(params, x) = module.apply({"params": params, **others}, x)``, where ``others`` are the
      module's non-parameter collections at initialization (e.g. constants), held fixed.
    * A ``flax.nnx`` factory ``rngs -> nnx.Module`` (e.g. ``lambda rngs: MyNet(..., rngs=rngs)``):
      ``init(key, scale)`` builds the module from ``nnx.Rngs(key)`` and returns ``scale`` times its
      ``nnx.Param`` state; ``apply`` merges the params back into the module's graph.
    * An ``nnx.Module`` instance: as the factory, but its parameters were already drawn by its own
      ``Rngs``, so ``init(key, scale)`` returns ``scale`` times them and does not use ``key``.

    Args:
      module: a linen module, an nnx module, or an nnx factory.
      x_example: an input batch ``[n, ...]`` fixing the input shape (``n`` may differ later).

    Returns:
      ``Model(init, apply)`` with ``apply(params, x)`` checking ``x.shape[1:]``.
    """
    from flax import linen as nn
    from flax import nnx

    x_shape = tuple(np.shape(x_example))
    if len(x_shape) < 1:
        raise ValueError(f"x_example: expected a batch [n, ...], got shape {x_shape}")

    if isinstance(module, nn.Module):
        variables = jax.eval_shape(module.init, jax.random.key(0), x_example)
        if "params" not in variables:
            raise ValueError("module: the linen module has no 'params' collection")
        others = {
            k: v for k, v in module.init(jax.random.key(0), x_example).items() if k != "params"
        }

        def init(key, scale=1.0):
            return _scale_tree(module.init(key, x_example)["params"], scale)

        def apply(params, x):
            _check_x(x, x_shape)
            return module.apply({"params": params, **others}, x)

        return Model(init, apply)

    if isinstance(module, nnx.Module):
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)

        def init(key, scale=1.0):
            del key  # the instance's parameters were drawn by its own Rngs
            return _scale_tree(params, scale)

    elif callable(module):
        factory: Callable = module
        abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
        if not isinstance(abstract, nnx.Module):
            raise ValueError(
                f"module: expected a linen module, an nnx module or a factory rngs -> nnx.Module; "
                f"the factory returned {type(abstract).__name__}"
            )
        graphdef, _, rest_abstract = nnx.split(abstract, nnx.Param, ...)
        rest = nnx.split(factory(nnx.Rngs(0)), nnx.Param, ...)[2]
        del rest_abstract

        def init(key, scale=1.0):
            _, p, _ = nnx.split(factory(nnx.Rngs(key)), nnx.Param, ...)
            return _scale_tree(p, scale)

    else:
        raise ValueError(
            f"module: expected a flax.linen.Module, an nnx.Module or a factory rngs -> nnx.Module, "
            f"got {type(module).__name__}"
        )

    def apply(params, x):
        _check_x(x, x_shape)
        return nnx.merge(graphdef, params, rest)(x)

    return Model(init, apply)
