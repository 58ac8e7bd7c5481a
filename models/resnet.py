r"""Deep residual networks with a depth-scaled residual branch, and their continuous-depth limit.

The network (row convention, a batch ``x: [n, d_in]``)::

    h_0 = x A,      h_{k+1} = h_k + alpha_L * branch_k(h_k)  (k = 0..L-1),      y = h_L B,

with ``branch_k(h) = phi(h W_k) V_k`` (``"full"``) or ``phi(h) V_k`` (``"simple"``) and
``alpha_L = L^{-beta}`` (Marion, Fermanian, Biau and Vert, "Scaling ResNets in the large-depth
regime", 2022). With i.i.d. weights only ``beta = 1/2`` gives non-trivial, non-exploding
dynamics as ``L -> infinity`` (the limit is a neural SDE, ``dH = dM(s) phi(H)`` for a matrix
Brownian motion ``M``); with weights that are smooth functions of the layer index ``s = k / L``,
``beta = 1`` gives a neural ODE,

    dH/ds = phi(H W(s)) V(s),      s in [0, 1],

of which the depth-``L`` network is exactly the explicit Euler scheme with step ``1/L``
(`resnet_field` gives this field to `flowax.dynamics.integrate`). Marion, Wu, Sander and Biau
("Implicit regularization of deep residual networks towards neural ODEs", 2024) show that
gradient flow with the layer-wise time scale ``L`` (``dZ_k/dt = -L dl/dZ_k``; flowax: the
``rates`` option of `flowax.dynamics.gradient_flow` / `gradient_descent`, see `depth_rates`) from
the tied initialization ``W_k = W, V_k = 0`` keeps the network a discretized neural ODE.

Layers run in one ``lax.scan`` over weights stacked along a leading depth axis, so the compiled
program (and its compile time) does not grow with the depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._model import Model, check_batch, check_params_shapes, get_activation

BRANCHES = ("full", "simple")
INITS = ("iid", "tied", "smooth")


def smooth_weights(
    key: jax.Array,
    shape: tuple[int, ...],
    *,
    std: float = 1.0,
    length_scale: float = 0.25,
    n_features: int = 64,
) -> Callable[[Any], jax.Array]:
    r"""A random smooth matrix-valued function of depth ``s``, ``W(s): shape``.

    ``W(s) = std / sqrt(J) * sum_j (A_j cos(omega_j s) + B_j sin(omega_j s))`` with ``A_j, B_j``
    i.i.d. standard Gaussian arrays of ``shape`` and ``omega_j ~ N(0, 1 / length_scale^2)``,
    ``j = 1..J`` (``J = n_features``; random Fourier features, Rahimi and Recht 2007). Given the
    frequencies, every entry is an independent Gaussian process with covariance
    ``std^2 (1/J) sum_j cos(omega_j (s - s'))``, whose expectation over the frequencies is the
    squared-exponential kernel ``std^2 exp(-(s - s')^2 / (2 length_scale^2))``; the marginal
    variance is exactly ``std^2`` at every ``s``. ``W`` is infinitely differentiable in ``s``.

    Returns:
      ``W(s)`` for a scalar ``s`` (shape ``shape``) or ``s: [k]`` (shape ``[k, *shape]``).
    """
    _checks.check_key("key", key)
    try:
        shape = tuple(_checks.check_int("shape", d, minimum=1) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape: expected a tuple of positive ints, got {shape!r}") from None
    _checks.check_positive("std", std)
    _checks.check_positive("length_scale", length_scale)
    n_features = _checks.check_positive_int("n_features", n_features)
    k_omega, k_a, k_b = jax.random.split(key, 3)
    omega = jax.random.normal(k_omega, (n_features,)) / length_scale
    a = jax.random.normal(k_a, (n_features, *shape))
    b = jax.random.normal(k_b, (n_features, *shape))
    coef = std / math.sqrt(n_features)

    def weights(s):
        s = jnp.asarray(s)
        dtype = s.dtype if jnp.issubdtype(s.dtype, jnp.floating) else jnp.result_type(float)
        phase = s.astype(dtype)[..., None] * omega.astype(dtype).reshape((1,) * s.ndim + (-1,))
        out = jnp.tensordot(jnp.cos(phase), a.astype(dtype), axes=1)
        return coef * (out + jnp.tensordot(jnp.sin(phase), b.astype(dtype), axes=1))

    return weights


def _alpha(scaling, depth: int) -> float:
    if callable(scaling):
        alpha = scaling(depth)
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise ValueError(
                f"scaling: the callable must return a number alpha_L for depth {depth}, got "
                f"{type(alpha).__name__}"
            ) from None
        if not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"scaling: expected alpha_L > 0 for depth {depth}, got {alpha}")
        return alpha
    if isinstance(scaling, bool) or not isinstance(scaling, (int, float, np.floating, np.integer)):
        raise ValueError(
            "scaling: expected the exponent beta (a number >= 0, alpha_L = L^-beta) or a callable "
            f"depth -> alpha_L, got {type(scaling).__name__}"
        )
    _checks.check_positive("scaling", scaling, allow_zero=True)
    return float(depth) ** (-float(scaling))


def _block(branch: str, phi: Callable):
    def block(h, w, v):
        return phi(h @ w) @ v if branch == "full" else phi(h) @ v

    return block


def resnet(
    width: int,
    depth: int,
    *,
    d_in: int,
    d_out: int = 1,
    branch: str = "full",
    scaling: float | Callable[[int], float] = 0.5,
    init: str = "iid",
    activation: str | Callable = "relu",
    length_scale: float = 0.25,
    n_features: int = 64,
) -> Model:
    r"""A residual network ``h_{k+1} = h_k + alpha_L branch_k(h_k)`` of ``depth`` blocks.

    Parameters (``init(key, scale)``, every entry multiplied by ``scale``; with
    ``ka, kb, kw, kv = jax.random.split(key, 4)``):

    * ``"embed"`` ``A: [d_in, width]``, entries ``N(0, 1/d_in)`` (key ``ka``); ``"readout"``
      ``B: [width, d_out]``, entries ``N(0, 1/width)`` (key ``kb``).
    * ``"v"`` ``V: [depth, width, width]`` and, for ``branch="full"``, ``"w"`` ``W`` likewise:

      - ``"iid"``: independent ``N(0, 1/width)`` entries in every layer (keys ``kw``, ``kv``);
      - ``"tied"``: ``W_k = W`` (one ``N(0, 1/width)`` draw from ``kw``) and ``V_k = 0`` for all
        ``k`` (Marion et al. 2024);
      - ``"smooth"``: ``W_k = W(k/L)``, ``V_k = V(k/L)`` with
        ``W = smooth_weights(kw, (width, width), std=width**-0.5, length_scale=length_scale,
        n_features=n_features)`` and ``V`` from ``kv`` alike: a smooth Gaussian process in the
        layer index with the squared-exponential kernel of length scale ``length_scale``.

    For ``"full"`` branches with ReLU and independent symmetric weights of variance ``1/width``,
    ``E|h_{k+1}|^2 = (1 + alpha_L^2 / 2) |h_k|^2`` exactly (``h W`` has symmetric entries of
    variance ``|h|^2 / width``, so ``E|relu(h W)|^2 = |h|^2 / 2``, and ``V`` adds its square norm
    with no cross term), hence ``E|h_L|^2 = (1 + L^{-2 beta} / 2)^L |h_0|^2``, which tends to
    infinity, ``e^{1/2}`` or 1 for ``beta <``, ``=``, ``> 1/2``.

    Args:
      width, depth: positive ints (``depth`` = number of residual blocks ``L``).
      d_in, d_out: input and output dimensions.
      branch: ``"full"`` (``phi(h W_k) V_k``) or ``"simple"`` (``phi(h_k) V_k``).
      scaling: ``beta >= 0`` (``alpha_L = L^{-beta}``) or a callable ``depth -> alpha_L > 0``.
      init: ``"iid"``, ``"tied"`` or ``"smooth"``.
      activation: a name in ``flowax.models.ACTIVATIONS`` or an elementwise callable.
      length_scale, n_features: of the ``"smooth"`` weights (see `smooth_weights`).

    Returns:
      ``Model(init, apply)``; ``apply(params, x, *, perturb=None, return_features=False)``. With
      ``return_features=True`` it returns ``(y, features)``, ``features = (h_0[None], h_{1..L}
      [L, n, width], y[None])``: every leaf has a leading layer axis and the ``L + 2`` layers are
      the outputs of the embedding, of each block and of the readout, in depth order (the
      layers of `layer_labels`). ``perturb`` (the same structure) is added to each feature where
      it is computed, so later layers see it: the gradient in ``perturb`` at 0 is the backward
      pass ``dl/dh_k`` (see `flowax.kernels.feature_updates`).
    """
    width = _checks.check_positive_int("width", width)
    depth = _checks.check_positive_int("depth", depth)
    d_in = _checks.check_positive_int("d_in", d_in)
    d_out = _checks.check_positive_int("d_out", d_out)
    _checks.check_option("branch", branch, BRANCHES)
    _checks.check_option("init", init, INITS)
    phi = get_activation(activation)
    alpha = _alpha(scaling, depth)
    _checks.check_positive("length_scale", length_scale)
    n_features = _checks.check_positive_int("n_features", n_features)
    full = branch == "full"
    square = jax.ShapeDtypeStruct((depth, width, width), jnp.float32)
    shapes = {
        "embed": jax.ShapeDtypeStruct((d_in, width), jnp.float32),
        "readout": jax.ShapeDtypeStruct((width, d_out), jnp.float32),
        "v": square,
    } | ({"w": square} if full else {})
    block = _block(branch, phi)

    def init_fn(key, scale=1.0):
        dtype = jnp.result_type(scale, float)
        ka, kb, kw, kv = jax.random.split(key, 4)
        sq = (depth, width, width)
        std = 1.0 / math.sqrt(width)
        params = {
            "embed": jax.random.normal(ka, (d_in, width), dtype) / math.sqrt(d_in),
            "readout": jax.random.normal(kb, (width, d_out), dtype) * std,
        }
        if init == "iid":
            w = jax.random.normal(kw, sq, dtype) * std
            v = jax.random.normal(kv, sq, dtype) * std
        elif init == "tied":
            w = jnp.broadcast_to(jax.random.normal(kw, (1, width, width), dtype) * std, sq)
            v = jnp.zeros(sq, dtype)
        else:
            s = jnp.arange(depth, dtype=dtype) / depth
            opts = dict(std=std, length_scale=length_scale, n_features=n_features)
            w = smooth_weights(kw, (width, width), **opts)(s)
            v = smooth_weights(kv, (width, width), **opts)(s)
        params["v"] = v
        if full:
            params["w"] = w
        return jax.tree_util.tree_map(lambda p: (scale * p).astype(dtype), params)

    def apply(params, x, *, perturb=None, return_features=False):
        check_params_shapes(params, shapes)
        check_batch(x, d_in)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params), x)
        n = np.shape(x)[0]
        if perturb is not None:
            check_params_shapes(
                perturb,
                (
                    jax.ShapeDtypeStruct((1, n, width), dtype),
                    jax.ShapeDtypeStruct((depth, n, width), dtype),
                    jax.ShapeDtypeStruct((1, n, d_out), dtype),
                ),
                name="perturb",
            )
        h0 = x @ params["embed"]
        w = params["w"] if full else params["v"]  # a placeholder scanned alongside for "simple"
        if perturb is None:  # the plain forward: no zero perturbations scanned, no stacked output

            def body(h, layer):
                wk, vk = layer
                h = h + alpha * block(h, wk, vk)
                return h, (h if return_features else None)

            h_last, hs = jax.lax.scan(body, h0, (w, params["v"]))
        else:
            h0 = h0 + perturb[0][0]

            def body(h, layer):
                wk, vk, ek = layer
                h = h + alpha * block(h, wk, vk) + ek
                return h, h

            h_last, hs = jax.lax.scan(body, h0, (w, params["v"], perturb[1]))
        y = h_last @ params["readout"]
        if perturb is not None:
            y = y + perturb[2][0]
        if return_features:
            return y, (h0[None], hs, y[None])
        return y

    return Model(init_fn, apply)


def resnet_field(
    weights: Any, *, branch: str = "full", activation: str | Callable = "relu"
) -> Callable:
    r"""The neural ODE ``dH/ds = branch(s, H)`` of a ResNet, as a vector field for `integrate`.

    ``field(s, h, args) = phi(h W(s)) V(s)`` (``"full"``) or ``phi(h) V(s)`` (``"simple"``) on
    ``s in [0, 1]``, for ``h: [n, width]``. ``weights`` is either

    * a callable ``s -> {"w": [width, width], "v": [width, width]}`` (``"v"`` only for a simple
      branch), e.g. built from `smooth_weights`; or
    * the ``params`` of a `resnet` (its stacked ``"w"``, ``"v"`` of depth ``L``), read as the
      piecewise-constant function ``W(s) = W_k`` on ``[k/L, (k+1)/L)``: the depth-``L`` network
      with ``alpha_L = 1/L`` is then exactly this ODE's Euler scheme with step ``1/L``, and for
      weights that are samples of a smooth ``W(s)`` it approximates the ODE of ``W`` at rate
      ``O(1/L)``.

    The input of the ODE is ``H(0) = x A`` and the output ``H(1) B`` (``A, B`` = the params'
    ``"embed"`` and ``"readout"``); integrate it with
    ``flowax.dynamics.integrate(field, x @ params["embed"], t1=1.0)``.
    """
    _checks.check_option("branch", branch, BRANCHES)
    phi = get_activation(activation)
    block = _block(branch, phi)
    full = branch == "full"
    if callable(weights):
        fn = weights
    elif isinstance(weights, dict) and "v" in weights and (not full or "w" in weights):
        v = jnp.asarray(weights["v"])
        w = jnp.asarray(weights["w"]) if full else v
        if v.ndim != 3 or w.shape != v.shape:
            raise ValueError(
                f"weights: expected stacked 'w'/'v' of shape [L, width, width], got {v.shape}"
            )
        depth = v.shape[0]

        def fn(s):
            k = jnp.clip(jnp.floor(s * depth).astype(jnp.int32), 0, depth - 1)
            return {"w": w[k], "v": v[k]}

    else:
        want = "'w' and 'v'" if full else "'v'"
        raise ValueError(
            f"weights: expected a callable s -> dict or resnet params with {want}, got "
            f"{type(weights).__name__}"
        )

    def field(s, h, args):
        del args
        wv = fn(s)
        return block(h, wv["w"] if full else wv["v"], wv["v"])

    return field


def layer_labels(params: Any) -> Any:
    """Integer layer labels of a flowax model's parameters (a prefix tree of ``params``).

    * an `mlp` / `deep_linear` (a tuple of per-layer dicts): layer ``l`` is ``params[l]``;
    * a `resnet` (a dict with ``"embed"``, ``"v"``, ``"readout"``): ``"embed"`` is layer 0,
      block ``k`` (entry ``k`` of the stacked ``"w"``, ``"v"``) is layer ``k + 1`` (an int array
      ``[L]`` over the leading depth axis), ``"readout"`` is layer ``L + 1``.

    Layer ``l`` produces feature ``l`` of the model's ``return_features`` (used by
    `flowax.kernels.steer_feature_speed` and by `depth_rates`).
    """
    if isinstance(params, (tuple, list)) and params:
        return type(params)(i for i in range(len(params)))
    if isinstance(params, dict) and {"embed", "v", "readout"} <= set(params):
        depth = np.shape(params["v"])[0]
        blocks = np.arange(1, depth + 1)
        return {k: blocks for k in params if k in ("w", "v")} | {"embed": 0, "readout": depth + 1}
    raise ValueError(
        "params: expected the parameters of a flowax mlp (a tuple of layers) or resnet (a dict "
        f"with 'embed', 'v', 'readout'), got {type(params).__name__}; pass labels explicitly"
    )


def depth_rates(params: Any, rate: float | None = None) -> Any:
    """Per-leaf rates for depth-scaled training of a `resnet`.

    ``rate`` (default ``L``) on the blocks' ``"w"``, ``"v"``, 1 on ``"embed"`` and ``"readout"``;
    pass as ``rates=`` to `flowax.dynamics.gradient_flow` / `gradient_descent`
    (``dZ_k/dt = -L dl/dZ_k``, Marion et al. 2024).
    """
    if not (isinstance(params, dict) and {"embed", "v", "readout"} <= set(params)):
        raise ValueError(
            f"params: expected the parameters of a flowax resnet, got {type(params).__name__}"
        )
    depth = np.shape(params["v"])[0]
    rate = float(depth) if rate is None else rate
    _checks.check_positive("rate", rate)
    return {k: (rate if k in ("w", "v") else 1.0) for k in params}
