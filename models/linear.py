"""Deep linear networks (Saxe, McClelland, Ganguli 2014; Arora et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from . import _checks
from ._model import Model
from .mlp import mlp


def deep_linear(
    widths: Sequence[int], *, parametrization: str = "standard", weight_std: float = 1.0
) -> Model:
    """A deep linear network ``f(x) = x W_1 W_2 ... W_L`` (with the parametrization's multipliers).

    ``widths = [d_in, n_1, ..., d_out]`` gives ``L = len(widths) - 1`` weight matrices and no
    biases. In the ``"standard"`` parametrization ``W_l ~ scale * N(0, weight_std^2 / n_{l-1})``,
    so the end-to-end matrix has entries of size ``scale^L``: small ``scale`` gives the
    saddle-to-saddle (incremental learning) regime, large ``scale`` the lazy regime
    (Saxe et al. 2014; Jacot et al. 2021, "Saddle-to-saddle dynamics in deep linear networks").
    See `mlp` for the parametrizations.
    """
    return mlp(
        widths,
        activation="identity",
        parametrization=parametrization,
        weight_std=weight_std,
        use_bias=False,
    )


def end_to_end(model: Model, params, d_in: int) -> jax.Array:
    """The matrix ``E: [d_in, d_out]`` of a linear model, ``model.apply(params, x) = x @ E``."""
    if not isinstance(model, Model):
        raise ValueError(f"model: expected a flowax Model(init, apply), got {type(model).__name__}")
    _checks.check_finite_tree("params", params)
    d_in = _checks.check_positive_int("d_in", d_in)
    return model.apply(
        params, jnp.eye(d_in, dtype=jnp.result_type(*jax.tree_util.tree_leaves(params)))
    )
