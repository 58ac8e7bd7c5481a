"""Two-layer networks in mean-field scaling as objectives over measures of neurons.

``models.to_particles`` / ``models.from_particles`` convert the parameters of
``models.two_layer(..., parametrization="mean_field")`` to and from the measures used here, so
parameter-space descent and the measure flow of the same network can be compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models import _checks, get_activation
from ...models._particles import Particles, check_particles


def _check_neurons(p, width, what):
    """Particles ``[m, width]`` (shapes only: runs on tracers inside flows)."""
    check_particles(p)
    if np.shape(p.positions)[1:] != (width,):
        raise ValueError(
            f"particles.positions: expected {what}, shape [m, {width}], got {np.shape(p.positions)}"
        )


def _check_data(x, y):
    if np.ndim(x) != 2:
        raise ValueError(f"x: expected inputs of shape [n, d], got {np.shape(x)}")
    _checks.check_array("x", x)
    _checks.check_array("y", y)
    n, d = np.shape(x)
    if np.shape(y) != (n,):
        raise ValueError(f"y: expected shape [{n}] to match x [{n}, {d}], got {np.shape(y)}")
    _checks.check_finite_tree("x", x)
    _checks.check_finite_tree("y", y)


def two_layer_risk(
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Callable = "relu",
    reg: float = 0.0,
    chunk_size: int | None = None,
) -> Callable[..., jax.Array]:
    """Squared risk of a two-layer network in mean-field scaling, as a function of a measure.

    Each particle is a neuron ``theta_i = (a_i, b_i) in R^{1 + d}`` and
    ``f_mu(z) = sum_i w_i a_i phi(<b_i, z>)``, so that
    ``F(mu) = (1/2n) sum_n (f_mu(z_n) - y_n)^2 + reg sum_i w_i |theta_i|^2`` (convex in ``mu``).
    Chizat and Bach (2018); Mei, Montanari and Nguyen (2018).

    The samples are processed in chunks (a rematerialized ``lax.scan``) so that the ``[chunk, m]``
    feature block stays in cache in the forward and the backward pass; the value and gradients
    are those of the plain formula.

    Args:
      x: ``[n, d]`` inputs; y: ``[n]`` targets.
      activation: name or callable ``phi``.
      reg: weight of the ``int |theta|^2 dmu`` regularizer (>= 0).
      chunk_size: samples per chunk; default ``2^20 / m`` (about 4 MB of float32 features),
        at least 32.

    Returns:
      ``objective(particles, batch=None)``: with a minibatch ``batch = (x_b [b, d], y_b [b])``
      the risk is taken over it instead of ``(x, y)`` (what a step's ``args`` hands on).
    """
    phi = get_activation(activation)
    _checks.check_positive("reg", reg, allow_zero=True)
    if chunk_size is not None:
        chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
    _check_data(x, y)

    def risk(p: Particles, x, y) -> jax.Array:
        n, d = x.shape
        m = p.positions.shape[0]
        c = min(chunk_size or int(np.clip(2**20 // m, 32, n)), n)
        pad = -n % c
        xs = jnp.concatenate([x, jnp.zeros((pad, d), x.dtype)]).reshape(-1, c, d)
        ys = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]).reshape(-1, c)
        mask = (jnp.arange(n + pad) < n).reshape(-1, c)
        a, b = p.positions[:, 0], p.positions[:, 1:]
        wa = p.weights * a

        @jax.checkpoint
        def chunk(total, block):
            xc, yc, mc = block
            pred = phi(xc @ b.T) @ wa
            return total + 0.5 * jnp.sum(jnp.where(mc, (pred - yc) ** 2, 0.0)), None

        total, _ = jax.lax.scan(chunk, jnp.zeros((), wa.dtype), (xs, ys, mask))
        return total / n + reg * jnp.sum(p.weights * jnp.sum(p.positions**2, axis=1))

    def objective(p: Particles, batch: Any = None) -> jax.Array:
        _check_neurons(p, np.shape(x)[1] + 1, "neurons (a, b) in R^{1 + d}")
        if batch is None:
            return risk(p, x, y)
        return risk(p, *batch)

    return objective


def _bilevel_inner(phi, x, y, reg, p: Particles):
    n = x.shape[0]
    feats = phi(x @ p.positions.T) * p.weights[None, :]  # [n, m]
    gram = feats.T @ feats / n + reg * jnp.diag(p.weights)
    return feats, jnp.linalg.solve(gram, feats.T @ y / n)


def bilevel_two_layer_risk(
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Callable = "relu",
    reg: float = 1e-3,
) -> Callable[[Particles], jax.Array]:
    """The bilevel reduction of a signed two-layer network: outer measure over hidden weights.

    For hidden neurons ``b_i`` (the particles, masses ``w_i``) the signed output weights solve the
    inner ridge problem exactly,

        G(mu) = min_a (1/2n) sum_n (sum_i w_i a_i phi(<b_i, z_n>) - y_n)^2
                + (reg/2) sum_i w_i a_i^2,

    so the network can fit targets of any sign while ``mu`` stays a nonnegative measure on which
    mean-field Langevin dynamics acts (Wang, Mousavi-Hosseini and Chizat 2024, "Mean-field
    Langevin dynamics for signed measures via a bilevel approach"). The inner minimizer is
    ``a* = (Phi_w^T Phi_w / n + reg W)^{-1} Phi_w^T y / n`` with ``Phi_w = Phi W``
    (`bilevel_output_weights`); by the envelope theorem ``grad G`` is the partial gradient at
    ``a*``, which autodiff through the solve reproduces. The lifting reduction, with ``a_i``
    carried as a particle coordinate, is `two_layer_risk`.

    Args:
      x: ``[n, d]`` inputs; y: ``[n]`` targets.
      activation: name or callable ``phi``.
      reg: ridge weight ``> 0``, makes the inner problem strongly convex.
    """
    phi = get_activation(activation)
    _checks.check_positive("reg", reg)
    _check_data(x, y)

    def objective(p: Particles) -> jax.Array:
        _check_neurons(p, np.shape(x)[1], "hidden weights b in R^d")
        feats, a = _bilevel_inner(phi, x, y, reg, p)
        return 0.5 * jnp.mean((feats @ a - y) ** 2) + 0.5 * reg * jnp.sum(p.weights * a**2)

    return objective


def bilevel_output_weights(
    x: jax.Array,
    y: jax.Array,
    particles: Particles,
    *,
    activation: str | Callable = "relu",
    reg: float = 1e-3,
) -> jax.Array:
    """The inner minimizer ``a* [m]`` of `bilevel_two_layer_risk` (the signed output weights)."""
    phi = get_activation(activation)
    _checks.check_positive("reg", reg)
    _check_data(x, y)
    _check_neurons(particles, np.shape(x)[1], "hidden weights b in R^d")
    return _bilevel_inner(phi, x, y, reg, particles)[1]
