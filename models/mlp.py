"""Fully-connected networks in the standard, NTK, mean-field and muP parametrizations."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._model import PARAMETRIZATIONS, Model, check_batch, check_params_shapes, get_activation


def _layer_constants(widths, parametrization, weight_std, bias_std):
    """Per layer: (std of the stored weight, its forward multiplier, same for the bias)."""
    n_layers = len(widths) - 1
    out = []
    for l in range(n_layers):
        fan_in, fan_out = widths[l], widths[l + 1]
        last = l == n_layers - 1
        first = l == 0
        if parametrization == "standard":
            w_std, w_mult, b_std, b_mult = weight_std / math.sqrt(fan_in), 1.0, bias_std, 1.0
        elif parametrization == "ntk":
            w_std, w_mult, b_std, b_mult = 1.0, weight_std / math.sqrt(fan_in), 1.0, bias_std
        elif parametrization == "mean_field":
            w_mult = (
                weight_std / fan_in if (last and n_layers > 1) else weight_std / math.sqrt(fan_in)
            )
            w_std, b_std, b_mult = 1.0, 1.0, bias_std
        else:  # "mup": abc-parametrization of Yang & Hu (2021) with b_l = 1/2 for every layer
            if n_layers == 1:
                w_std, w_mult = 1.0 / math.sqrt(fan_in), weight_std
            elif first:
                w_std, w_mult = 1.0 / math.sqrt(fan_out), weight_std * math.sqrt(fan_out / fan_in)
            elif last:
                w_std, w_mult = 1.0 / math.sqrt(fan_in), weight_std / math.sqrt(fan_in)
            else:
                w_std, w_mult = 1.0 / math.sqrt(fan_in), weight_std
            b_std, b_mult = 1.0, bias_std
        out.append((w_std, w_mult, b_std, b_mult))
    return out


def mlp(
    widths: Sequence[int],
    *,
    activation: str | Callable = "relu",
    parametrization: str = "standard",
    weight_std: float = 1.0,
    bias_std: float = 0.0,
    use_bias: bool | None = None,
) -> Model:
    r"""A fully-connected network ``widths = [d_in, n_1, ..., n_{L-1}, d_out]`` as a `Model`.

    Layer ``l = 1..L`` computes ``h_l = m_l (z_{l-1} @ W_l) + m^b_l b_l`` with ``z_0 = x`` and
    ``z_l = phi(h_l)`` (no activation after the last layer). The stored parameters are drawn as
    ``W_l ~ scale * N(0, v_l)``, ``b_l ~ scale * N(0, v^b_l)``; with ``n = n_{l-1}`` (fan-in),
    ``sigma_w = weight_std``, ``sigma_b = bias_std``:

    * ``"standard"``:   ``v_l = sigma_w^2 / n``, ``m_l = 1``; ``v^b = sigma_b^2``, ``m^b = 1``.
    * ``"ntk"``:        ``v_l = 1``, ``m_l = sigma_w / sqrt(n)``; ``v^b = 1``, ``m^b = sigma_b``
      (Jacot, Gabriel, Hongler 2018).
    * ``"mean_field"``: as ``"ntk"`` except the readout, ``m_L = sigma_w / n_{L-1}``
      (Mei, Montanari, Nguyen 2018; Chizat and Bach 2018): ``f = (1/m) sum_i a_i phi(.)``.
    * ``"mup"``: the abc-parametrization of Yang and Hu (2021, "Tensor Programs IV") with
      ``b_l = 1/2``: input layer ``v_1 = 1/n_1``, ``m_1 = sigma_w sqrt(n_1 / d_in)``; hidden
      ``v_l = 1/n``, ``m_l = sigma_w``; readout ``v_L = 1/n``, ``m_L = sigma_w / sqrt(n)``.
      One global SGD learning rate then gives muP's per-layer rates. Biases as in ``"ntk"``.

    At ``scale = 1`` every parametrization gives the same forward variance
    ``Var h_l = sigma_w^2 E[z_{l-1}^2] + sigma_b^2`` in every layer except the readout of
    ``"mean_field"`` and ``"mup"``, whose variance carries an extra ``1 / n_{L-1}``. Under gradient
    flow the parametrizations differ by the per-layer factors ``m_l^2`` in the effective rates.

    Args:
      widths: ``[d_in, n_1, ..., d_out]``, at least two positive ints.
      activation: a name in ``flowax.models.ACTIVATIONS`` or an elementwise callable.
      parametrization: one of ``"standard"``, ``"ntk"``, ``"mean_field"``, ``"mup"``.
      weight_std: ``sigma_w > 0``.
      bias_std: ``sigma_b >= 0``.
      use_bias: whether layers have biases; default ``bias_std > 0``.

    Returns:
      ``Model(init, apply)``; params are a tuple of ``{"w": [n_{l-1}, n_l], "b": [n_l]}`` dicts,
      of the dtype of ``scale`` (a Python float gives the default float).
      ``apply(params, x, *, perturb=None, return_features=False)``: with ``return_features``
      it returns ``(y, features)``, ``features[l] = h_{l+1}[None]`` (the pre-activation output
      of layer ``l + 1``, with a leading layer axis of size 1; the last is ``y``). ``perturb``,
      of the same structure, is added to each ``h_l`` where it is computed (so the gradient in
      ``perturb`` at 0 is the backward pass ``dl/dh_l``; see `flowax.kernels.feature_updates`).

    Examples:
      >>> model = mlp([3, 64, 1], activation="tanh", parametrization="ntk")
      >>> params = model.init(jax.random.key(0), scale=0.5)
      >>> model.apply(params, jnp.ones((8, 3))).shape
      (8, 1)
    """
    try:
        widths = tuple(_checks.check_positive_int("widths", w) for w in widths)
    except (TypeError, ValueError):
        raise ValueError(f"widths: expected at least two positive ints, got {widths!r}") from None
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least two positive ints, got {widths!r}")
    _checks.check_option("parametrization", parametrization, PARAMETRIZATIONS)
    phi = get_activation(activation)
    _checks.check_positive("weight_std", weight_std)
    _checks.check_positive("bias_std", bias_std, allow_zero=True)
    weight_std, bias_std = float(weight_std), float(bias_std)
    if use_bias is None:
        use_bias = bias_std > 0
    consts = _layer_constants(widths, parametrization, weight_std, bias_std)
    shapes = tuple(
        {"w": jax.ShapeDtypeStruct((widths[l], widths[l + 1]), jnp.float32)}
        | ({"b": jax.ShapeDtypeStruct((widths[l + 1],), jnp.float32)} if use_bias else {})
        for l in range(len(widths) - 1)
    )

    def init(key, scale=1.0):
        keys = jax.random.split(key, 2 * len(consts))
        dtype = jnp.result_type(scale, float)  # float32 scales give float32 parameters
        params = []
        for l, (w_std, _, b_std, _) in enumerate(consts):
            shape = (widths[l], widths[l + 1])
            layer = {"w": scale * w_std * jax.random.normal(keys[2 * l], shape, dtype)}
            if use_bias:
                layer["b"] = scale * b_std * jax.random.normal(keys[2 * l + 1], shape[1:], dtype)
            params.append(layer)
        return tuple(params)

    def apply(params, x, *, perturb=None, return_features=False):
        check_params_shapes(params, shapes)
        check_batch(x, widths[0])
        if perturb is not None:
            n, dtype = np.shape(x)[0], jnp.result_type(*jax.tree_util.tree_leaves(params), x)
            want = tuple(jax.ShapeDtypeStruct((1, n, w), dtype) for w in widths[1:])
            check_params_shapes(perturb, want, name="perturb")
        h, features = x, []
        for l, (layer, (_, w_mult, _, b_mult)) in enumerate(zip(params, consts, strict=True)):
            h = w_mult * (h @ layer["w"])
            if use_bias:
                h = h + b_mult * layer["b"][None, :]
            if perturb is not None:
                h = h + perturb[l][0]
            features.append(h[None])
            if l < len(consts) - 1:
                h = phi(h)
        return (h, tuple(features)) if return_features else h

    return Model(init, apply)


def two_layer(
    width: int,
    *,
    d_in: int,
    d_out: int = 1,
    activation: str | Callable = "relu",
    parametrization: str = "mean_field",
    weight_std: float = 1.0,
    bias_std: float = 0.0,
    use_bias: bool | None = None,
) -> Model:
    """A two-layer network ``f(x) = m_2 phi(m_1 x W_1 + b) W_2``: ``mlp([d_in, width, d_out])``.

    In the default ``"mean_field"`` parametrization this is
    ``f(x) = (sigma_w / width) sum_i a_i phi(sigma_w w_i . x / sqrt(d_in))`` (Mei et al. 2018).
    """
    width = _checks.check_positive_int("width", width)
    d_in = _checks.check_positive_int("d_in", d_in)
    d_out = _checks.check_positive_int("d_out", d_out)
    return mlp(
        [d_in, width, d_out],
        activation=activation,
        parametrization=parametrization,
        weight_std=weight_std,
        bias_std=bias_std,
        use_bias=use_bias,
    )
