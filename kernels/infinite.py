"""Infinite-width NNGP and NTK of fully connected networks (NTK parametrization).

The network is ``depth`` hidden layers Dense + activation, then a Dense readout, with the
convention of ``neural_tangents.stax.serial(Dense(W_std, b_std), act, ..., Dense(W_std, b_std))``
(Neal 1996; Lee et al. 2018; Jacot, Gabriel and Hongler 2018; Novak et al. 2020):

    K_1 = W_std^2 x.x' / d_in + b_std^2,                          Theta_1 = K_1,
    K_{l+1} = W_std^2 E[phi(u) phi(v)] + b_std^2,
    Theta_{l+1} = K_{l+1} + W_std^2 E[phi'(u) phi'(v)] Theta_l,
    (u, v) ~ N(0, [[K_l(x, x), K_l(x, x')], [K_l(x, x'), K_l(x', x')]]).

Closed forms: ``"relu"`` (arc-cosine kernels, Cho and Saul 2009), ``"erf"`` (Williams 1997),
``"identity"``. Any other elementwise activation (a name from `flowax.models.ACTIVATIONS` or a
callable) by Gauss-Hermite quadrature in two dimensions with ``quadrature_degree`` nodes per
axis: exact for polynomials of degree ``< 2 * degree``; for smooth activations the error decays
geometrically in the degree but slows as the pre-activation variances grow (``erf`` through 3
layers with ``W_std = 1.4``, measured against its closed form: relative error of the NTK 3e-4
at 64 nodes, 4e-6 at the default 100, 8e-9 at 150); kinks (``relu``) converge only like
``1 / degree`` (3e-2 at 100 nodes): use the closed form.

``normalization="layernorm"`` standardizes each hidden layer's activations over its units (mean
0, variance 1). At infinite width this replaces ``E[phi(u) phi(v)]`` by the centred and
normalized ``C(x, x') / sqrt(C(x, x) C(x', x'))``, ``C = E[phi(u) phi(v)] - E[phi(u)] E[phi(v)]``,
and divides the ``E[phi' phi']`` term by the same ``sqrt(C(x, x) C(x', x'))`` (Jacot, Ged,
Simsek, Hongler and Gabriel, "Order and chaos: NTK views on DNN normalization, checkerboard and
boundary artifacts", 2019: layer normalization acts as a normalized nonlinearity).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks, get_activation

NORMALIZATIONS = (None, "layernorm")
CLOSED_FORMS = ("relu", "erf", "identity")


class Kernel(NamedTuple):
    """NNGP and NTK of the network's output, ``[n1, n2]`` each."""

    nngp: jax.Array
    ntk: jax.Array


# Taylor coefficients of arcsin(z) = z + z^3 sum_n a_n z^(2n); on |z| <= 1/2 the terms shrink
# like 4^-n n^-1.5, so 26 of them reach float64 rounding
_ASIN = [
    math.factorial(2 * n) / (4**n * math.factorial(n) ** 2 * (2 * n + 1)) for n in range(1, 27)
]


def _arccos(c):
    """arccos by the arcsin series on [0, 1/2] and arccos(a) = 2 arcsin(sqrt((1 - a) / 2)):
    a few fused multiply-adds per entry, where XLA's CPU arccos costs ~10 ns (measured: 10.8 ms
    for 1024^2 float32 entries, against ~1 ms for this); float64-accurate."""
    a = jnp.abs(c)
    small = a <= 0.5
    z = jnp.where(small, a, jnp.sqrt((1 - a) / 2))
    z2 = z * z
    poly = jnp.zeros_like(z)
    for coef in reversed(_ASIN):
        poly = poly * z2 + coef
    asin = z + z * z2 * poly
    acos_a = jnp.where(small, jnp.pi / 2 - asin, 2 * asin)
    return jnp.where(c >= 0, acos_a, jnp.pi - acos_a)


def _relu(q1, q2, k12):
    s = jnp.sqrt(q1 * q2)
    c = jnp.clip(k12 / s, -1.0, 1.0)
    theta = _arccos(c)
    e_phi = s / (2 * jnp.pi) * (jnp.sqrt(1 - c**2) + (jnp.pi - theta) * c)
    e_dphi = (jnp.pi - theta) / (2 * jnp.pi)
    mean = jnp.sqrt(q1 / (2 * jnp.pi)), jnp.sqrt(q2 / (2 * jnp.pi))
    return e_phi, e_dphi, mean


def _erf(q1, q2, k12):
    a, b = 1 + 2 * q1, 1 + 2 * q2
    e_phi = 2 / jnp.pi * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(a * b), -1.0, 1.0))
    e_dphi = 4 / jnp.pi / jnp.sqrt(a * b - 4 * k12**2)
    zero = jnp.zeros_like(q1), jnp.zeros_like(q2)
    return e_phi, e_dphi, zero


def _identity(q1, q2, k12):
    return k12, jnp.ones_like(k12), (jnp.zeros_like(q1), jnp.zeros_like(q2))


def _quadrature(phi, degree):
    z, w = np.polynomial.hermite_e.hermegauss(degree)  # weight exp(-z^2 / 2)
    z, w = jnp.asarray(z), jnp.asarray(w / w.sum())
    grad = jax.grad(lambda t: phi(t))

    def dphi(a):
        return jax.vmap(grad)(a.reshape(-1)).reshape(a.shape)

    def moments(q1, q2, k12):
        q1, q2, k12 = jnp.broadcast_arrays(q1, q2, k12)
        z_, w_ = z.astype(q1.dtype), w.astype(q1.dtype)  # nodes in the kernel's dtype
        s1, s2 = jnp.sqrt(q1), jnp.sqrt(q2)
        c = jnp.clip(k12 / (s1 * s2), -1.0, 1.0)
        r = jnp.sqrt(1 - c**2)
        lead = (1,) * s1.ndim
        za, zb = z_.reshape(*lead, -1, 1), z_.reshape(*lead, 1, -1)  # the two GH axes

        def col(a):
            return a[..., None, None]

        def expect(f):
            u = col(s1) * za + 0 * zb
            v = col(s2) * (col(c) * za + col(r) * zb)
            return jnp.einsum("...ab,a,b->...", f(u) * f(v), w_, w_)

        mean1 = jnp.einsum("...a,a->...", phi(s1[..., None] * z_.reshape(*lead, -1)), w_)
        mean2 = jnp.einsum("...a,a->...", phi(s2[..., None] * z_.reshape(*lead, -1)), w_)
        return expect(phi), expect(dphi), (mean1, mean2)

    return moments


def mlp_kernel(
    depth: int,
    *,
    activation: str | Callable = "relu",
    weight_std: float = 1.0,
    bias_std: float = 0.0,
    normalization: str | None = None,
    quadrature_degree: int = 100,
) -> Callable:
    """``kernel_fn(x1, x2=None) -> Kernel(nngp, ntk)`` of the network in the module docstring.

    Args:
      depth: number of hidden layers (Dense + activation), ``>= 1``.
      activation: ``"relu"``, ``"erf"``, ``"identity"`` (closed forms), another name of
        `flowax.models.ACTIVATIONS`, or an elementwise callable (quadrature).
      weight_std, bias_std: ``W_std > 0`` and ``b_std >= 0`` of every Dense layer.
      normalization: ``None`` or ``"layernorm"`` (after each activation).
      quadrature_degree: Gauss-Hermite nodes per axis for activations without a closed form.

    Returns:
      ``kernel_fn(x1 [n1, d], x2 [n2, d] or None) -> Kernel`` with ``[n1, n2]`` NNGP and NTK.
    """
    depth = _checks.check_positive_int("depth", depth)
    _checks.check_option("normalization", normalization, NORMALIZATIONS)
    _checks.check_positive("weight_std", weight_std)
    _checks.check_positive("bias_std", bias_std, allow_zero=True)
    quadrature_degree = _checks.check_positive_int("quadrature_degree", quadrature_degree)
    if isinstance(activation, str) and activation in CLOSED_FORMS:
        moments = {"relu": _relu, "erf": _erf, "identity": _identity}[activation]
    else:
        moments = _quadrature(get_activation(activation), quadrature_degree)
    w2, b2 = weight_std**2, bias_std**2

    def layer(q1, q2, k12, theta):
        """Activation (+ norm) then Dense, on the diagonals and the cross kernel."""
        e_phi, e_dphi, (m1, m2) = moments(q1[:, None], q2[None, :], k12)
        d1, _, (n1, _) = moments(q1, q1, q1)
        d2, _, (n2, _) = moments(q2, q2, q2)
        if normalization == "layernorm":
            c1, c2 = d1 - n1**2, d2 - n2**2
            norm = jnp.sqrt(c1[:, None] * c2[None, :])
            e_phi = (e_phi - m1 * m2) / norm
            e_dphi = e_dphi / norm
            d1, d2 = jnp.ones_like(d1), jnp.ones_like(d2)
        k_new = w2 * e_phi + b2
        return w2 * d1 + b2, w2 * d2 + b2, k_new, k_new + w2 * e_dphi * theta

    def kernel_fn(x1: jax.Array, x2: jax.Array | None = None) -> Kernel:
        x1 = jnp.asarray(x1)
        if x1.ndim != 2:
            raise ValueError(f"x1: expected inputs [n1, d], got shape {x1.shape}")
        if x2 is not None:
            x2 = jnp.asarray(x2)
            if x2.ndim != 2 or x2.shape[1] != x1.shape[1]:
                raise ValueError(f"x2: expected shape [n2, {x1.shape[1]}] like x1, got {x2.shape}")
        y = x1 if x2 is None else x2
        d = x1.shape[1]
        q1 = w2 * jnp.sum(x1 * x1, 1) / d + b2
        q2 = w2 * jnp.sum(y * y, 1) / d + b2
        k = w2 * (x1 @ y.T) / d + b2
        theta = k
        # one compiled layer in a loop: unrolled, XLA's CPU fusion of the whole elementwise chain
        # made depth 5 take 62 ms on 1024^2 entries, against 5 x 2.3 ms for separate layers
        q1, q2, k, theta = jax.lax.fori_loop(
            0, depth, lambda _, state: layer(*state), (q1, q2, k, theta)
        )
        return Kernel(k, theta)

    return kernel_fn
