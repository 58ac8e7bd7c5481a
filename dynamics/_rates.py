"""Per-leaf learning-rate multipliers (layer-wise time scales) for gradient flow and descent."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks

PyTree = Any


def _pairs(rates: PyTree, tree: PyTree, name: str = "rates") -> tuple[list, list, Any]:
    treedef = jax.tree_util.tree_structure(rates)
    try:
        subtrees = treedef.flatten_up_to(tree)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name}: expected a prefix tree of the params' structure "
            f"{jax.tree_util.tree_structure(tree)}, got {treedef}"
        ) from None
    return jax.tree_util.tree_leaves(rates), subtrees, treedef


def check_rates(rates: PyTree, params: PyTree, name: str = "rates") -> None:
    """Raises ValueError unless ``rates`` is a prefix tree of ``params`` whose leaves are finite
    non-negative numbers or arrays whose shape is a leading part of every leaf they cover."""
    if rates is None:
        return
    for r, sub in zip(*_pairs(rates, params, name)[:2], strict=True):
        if isinstance(r, (str, bytes)) or (
            not isinstance(r, jax.Array) and not np.issubdtype(np.asarray(r).dtype, np.number)
        ):
            raise ValueError(f"{name}: expected numbers or numeric arrays, got {r!r}")
        shape = np.shape(r)
        value = _checks.concrete(r)
        if value is not None and (not np.all(np.isfinite(value)) or np.any(value < 0)):
            raise ValueError(f"{name}: expected finite values >= 0, got {value}")
        for leaf in jax.tree_util.tree_leaves(sub):
            if tuple(np.shape(leaf)[: len(shape)]) != tuple(shape):
                raise ValueError(
                    f"{name}: an entry of shape {shape} must match the leading axes of the leaves "
                    f"it covers; got a leaf of shape {np.shape(leaf)}"
                )


def scale_by_rates(rates: PyTree, tree: PyTree) -> PyTree:
    """``tree`` with every leaf multiplied by its rate (broadcast over the trailing axes)."""
    if rates is None:
        return tree
    leaves, subtrees, treedef = _pairs(rates, tree)

    def scale(r, sub):
        def leaf(g):
            r_ = jnp.asarray(r, jnp.result_type(g))
            return g * r_.reshape(r_.shape + (1,) * (np.ndim(g) - r_.ndim))

        return jax.tree_util.tree_map(leaf, sub)

    return treedef.unflatten([scale(r, s) for r, s in zip(leaves, subtrees, strict=True)])
