"""The model contract (two pure functions) and the activations and parametrizations of models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class Model(NamedTuple):
    """A model as two pure functions (the neural-tangents / optax factory convention).

    Attributes:
      init: ``init(key, scale=1.0) -> params``. ``key`` and ``scale`` may be traced, so
        ``jax.vmap(model.init)(keys, scales)`` builds a whole sweep of initializations.
        ``scale`` multiplies every initial parameter.
      apply: ``apply(params, x) -> y`` maps a batch ``x: [n, d_in]`` to ``y: [n, d_out]``.
    """

    init: Callable[..., PyTree]
    apply: Callable[[PyTree, jax.Array], jax.Array]


def _erf(x):
    return jax.scipy.special.erf(x)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": _erf,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "identity": lambda x: x,
}

PARAMETRIZATIONS = ("standard", "ntk", "mean_field", "mup")


def get_activation(activation: str | Callable) -> Callable[[jax.Array], jax.Array]:
    """Returns the elementwise function named by ``activation`` (or ``activation`` if callable)."""
    if callable(activation):
        return activation
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"activation: unknown activation {activation!r}; expected a callable or one of "
            f"{sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[activation]


def check_params_shapes(params: PyTree, expected: PyTree, name: str = "params") -> None:
    """Raises ValueError unless ``params`` has the tree structure and shapes of ``expected``."""
    got_leaves, got_tree = jax.tree_util.tree_flatten(params)
    exp_leaves, exp_tree = jax.tree_util.tree_flatten(expected)
    if got_tree != exp_tree:
        raise ValueError(f"{name}: expected a pytree of structure {exp_tree}, got {got_tree}")
    for path_leaf, g, e in zip(
        jax.tree_util.tree_flatten_with_path(expected)[0], got_leaves, exp_leaves, strict=True
    ):
        if tuple(np.shape(g)) != tuple(e.shape):
            path = jax.tree_util.keystr(path_leaf[0])
            raise ValueError(
                f"{name}{path}: expected shape {tuple(e.shape)}, got {tuple(np.shape(g))}"
            )


def check_batch(x: jax.Array, d_in: int, name: str = "x") -> None:
    """Raises ValueError unless ``x`` has shape ``[n, d_in]``."""
    shape = tuple(np.shape(x))
    if len(shape) != 2 or shape[1] != d_in:
        raise ValueError(f"{name}: expected a batch of shape [n, {d_in}], got shape {shape}")
