"""Adapters from flax modules (linen and nnx) to the `Model` contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._model import Model


def _scale_tree(tree, scale):
    return jax.tree_util.tree_map(lambda p: scale * p, tree)


def _feature_names(features) -> tuple[str, ...]:
    if isinstance(features, str):
        features = (features,)
    try:
        names = tuple(features)
    except TypeError:
        names = ()
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"features: expected a sequence of submodule names (str), got {features!r}"
        )
    return names


def _check_x(x, example_shape):
    shape = tuple(np.shape(x))
    if len(shape) != len(example_shape) or shape[1:] != tuple(example_shape[1:]):
        want = "[n, " + ", ".join(str(d) for d in example_shape[1:]) + "]"
        raise ValueError(f"x: expected a batch of shape {want}, got shape {shape}")


def _linen_features(module, variables, names):
    """``apply(params, x, perturb, return_features)`` tapping the outputs of named submodules."""
    from flax import linen as nn

    def apply(params, x, perturb=None, return_features=False):
        found: dict[int, jax.Array] = {}

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name != "__call__":
                return out
            mod = context.module
            path = "/".join(str(p) for p in mod.path)
            for i, name in enumerate(names):
                if name in (mod.name, path):
                    if i in found:
                        raise ValueError(
                            f"features: submodule {name!r} is called more than once; name "
                            "each feature's submodule once"
                        )
                    if perturb is not None:
                        out = out + perturb[i][0]
                    found[i] = out
            return out

        with nn.intercept_methods(interceptor):
            y = module.apply({"params": params, **variables}, x)
        missing = [n for i, n in enumerate(names) if i not in found]
        if missing:
            raise ValueError(
                f"features: no submodule named {missing} was called (give the submodules' names "
                "or '/'-joined paths, e.g. 'Dense_0' or 'block/Dense_1')"
            )
        if return_features:
            return y, tuple(found[i][None] for i in range(len(names)))
        return y

    return apply


def from_flax(module: Any, x_example: jax.Array, *, features: Any = None) -> Model:
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
      features: (linen modules) names or ``/``-joined paths of submodules, in depth order, whose
        outputs are the model's features: then ``apply(params, x, *, perturb=None,
        return_features=False)`` taps them by ``flax.linen.intercept_methods`` (the module's
        code is unchanged) as `flowax.models.mlp` does, for `flowax.kernels.feature_updates`.

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

        if features is None:

            def apply(params, x):
                _check_x(x, x_shape)
                return module.apply({"params": params, **others}, x)

        else:
            names = _feature_names(features)
            tapped = _linen_features(module, others, names)

            def apply(params, x, *, perturb=None, return_features=False):
                _check_x(x, x_shape)
                return tapped(params, x, perturb, return_features)

        return Model(init, apply)

    if features is not None:
        raise ValueError(
            "features: tapping submodule outputs is supported for flax.linen modules; for an nnx "
            "module return the features from its __call__ and wrap it yourself"
        )

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
