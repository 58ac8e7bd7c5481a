"""A two-layer network in mean-field scaling and its measure of neurons, converted both ways.

``models.two_layer(width, d_in=d, parametrization="mean_field", weight_std=s)`` (no bias,
``d_out = 1``) computes ``f(x) = (s / m) sum_i a_i phi((s / sqrt(d)) w_i . x)`` with stored
parameters ``W_1 = [w_1 .. w_m] [d, m]`` and ``W_2 = [a_1 .. a_m]^T [m, 1]``. The same function is
``f_mu(x) = sum_i w_i A_i phi(<B_i, x>)`` of the measure ``mu = (1/m) sum_i delta_{(A_i, B_i)}``
with ``A_i = s a_i`` and ``B_i = (s / sqrt(d)) w_i``: the measure that
`flowax.dynamics.measures.two_layer_risk` takes (Chizat and Bach 2018; Mei, Montanari and Nguyen
2018). With ``L(theta) = F(mu_theta)`` and ``V`` the first variation of ``F``,
``dL/da_i = (s / m) grad_A V(A_i, B_i)`` and ``dL/dw_i = (s / (m sqrt(d))) grad_B V(A_i, B_i)``,
so gradient flow of the parameters is the Wasserstein flow of ``mu`` slowed down by ``m``:
``dA_i/dt = -(s^2 / m) grad_A V`` and ``dB_i/dt = -(s^2 / (m d)) grad_B V`` (the mean-field
time scale: parameter-space descent with a learning rate ``m`` times larger follows the measure
flow).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._particles import Particles, check_particles


def _check_std(weight_std):
    _checks.check_positive("weight_std", weight_std)
    return float(weight_std)


def two_layer_to_particles(params, *, weight_std: float = 1.0) -> Particles:
    """The measure of neurons of a mean-field `two_layer` network (module docstring).

    Args:
      params: ``({"w": [d, m]}, {"w": [m, 1]})`` of ``two_layer(m, d_in=d, d_out=1,
        parametrization="mean_field", weight_std=weight_std)`` without biases.
      weight_std: the network's ``weight_std`` ``s``.

    Examples:
      >>> params = two_layer(8, d_in=3, weight_std=2.0).init(jax.random.key(0))
      >>> two_layer_to_particles(params, weight_std=2.0).positions.shape
      (8, 4)

    Returns:
      `Particles` with ``weights [m] = 1/m`` and ``positions [m, 1 + d] = (A_i, B_i)``.
    """
    s = _check_std(weight_std)
    ok = (
        isinstance(params, (tuple, list))
        and len(params) == 2
        and all(isinstance(layer, dict) and set(layer) == {"w"} for layer in params)
    )
    if not ok:
        raise ValueError(
            "params: expected ({'w': [d, m]}, {'w': [m, 1]}) of a bias-free two_layer network, "
            f"got {jax.tree_util.tree_structure(params)}"
        )
    w1, w2 = params[0]["w"], params[1]["w"]
    d, m = np.shape(w1)
    if np.shape(w2) != (m, 1):
        raise ValueError(f"params[1]['w']: expected shape ({m}, 1), got {np.shape(w2)}")
    positions = jnp.concatenate([s * w2, (s / math.sqrt(d)) * w1.T], axis=1)
    return Particles(jnp.full(m, 1.0 / m, positions.dtype), positions)


def particles_to_two_layer(particles: Particles, *, weight_std: float = 1.0):
    """The parameters of the mean-field `two_layer` network computing ``f_mu`` (inverse of
    `two_layer_to_particles`; non-uniform masses are folded into the output weights,
    ``a_i = m w_i A_i / s``).

    Args:
      particles: ``weights [m]``, ``positions [m, 1 + d]`` (``(A_i, B_i)``).
      weight_std: the network's ``weight_std`` ``s``.

    Returns:
      ``({"w": [d, m]}, {"w": [m, 1]})``.
    """
    s = _check_std(weight_std)
    check_particles(particles)
    if np.ndim(particles.positions) != 2 or np.shape(particles.positions)[1] < 2:
        raise ValueError(
            "particles.positions: expected shape [m, 1 + d] (output weight, then input "
            f"weights), got {np.shape(particles.positions)}"
        )
    m, d1 = np.shape(particles.positions)
    d = d1 - 1
    a = particles.positions[:, 0] * particles.weights * m / s
    w1 = (math.sqrt(d) / s) * particles.positions[:, 1:].T
    return ({"w": w1}, {"w": a[:, None]})
