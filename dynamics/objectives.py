"""Objectives over measures, written as JAX functions of `Particles`."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..models._model import get_activation
from . import _checks
from .particles import Particles


def potential_energy(v: Callable[[jax.Array], jax.Array]) -> Callable[[Particles], jax.Array]:
    """``F(mu) = int v dmu = sum_i w_i v(x_i)``; its first variation is ``v``.

    Args:
      v: ``v(x) -> scalar`` for one position ``x`` (vmapped over particles).
    """

    def objective(p: Particles) -> jax.Array:
        return jnp.sum(p.weights * jax.vmap(v)(p.positions))

    return objective


def interaction_energy(
    kernel: Callable[[jax.Array, jax.Array], jax.Array],
    v: Callable[[jax.Array], jax.Array] | None = None,
) -> Callable[[Particles], jax.Array]:
    """``F(mu) = int v dmu + (1/2) int int k(x, y) dmu(x) dmu(y)``.

    First variation ``V(x) = v(x) + int k(x, y) dmu(y)`` (for symmetric ``k``). Convex in ``mu``
    when ``k`` is a positive-definite kernel. The entropic part of free energies enters through
    the noise of `flowax.dynamics` Langevin flows, not through this objective.
    """

    def objective(p: Particles) -> jax.Array:
        gram = jax.vmap(lambda a: jax.vmap(lambda b: kernel(a, b))(p.positions))(p.positions)
        out = 0.5 * p.weights @ gram @ p.weights
        if v is not None:
            out = out + jnp.sum(p.weights * jax.vmap(v)(p.positions))
        return out

    return objective


def two_layer_risk(
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Callable = "relu",
    l2: float = 0.0,
    chunk_size: int | None = None,
) -> Callable[[Particles], jax.Array]:
    """Squared risk of a two-layer network in mean-field scaling, as a function of a measure.

    Each particle is a neuron ``theta_i = (a_i, b_i) in R^{1 + d}`` and
    ``f_mu(z) = sum_i w_i a_i phi(<b_i, z>)``, so that
    ``F(mu) = (1/2n) sum_n (f_mu(z_n) - y_n)^2 + l2 sum_i w_i |theta_i|^2`` (convex in ``mu``).
    Chizat and Bach (2018); Mei, Montanari and Nguyen (2018).

    The samples are processed in chunks (a rematerialized ``lax.scan``) so that the ``[chunk, m]``
    feature block stays in cache in the forward and the backward pass; the value and gradients
    are those of the plain formula.

    Args:
      x: ``[n, d]`` inputs; y: ``[n]`` targets.
      activation: name or callable ``phi``.
      l2: weight of the ``int |theta|^2 dmu`` regularizer (>= 0).
      chunk_size: samples per chunk; default ``2^20 / m`` (about 4 MB of float32 features),
        at least 32.
    """
    phi = get_activation(activation)
    _checks.check_positive("l2", l2, allow_zero=True)
    if chunk_size is not None:
        _checks.check_positive_int("chunk_size", chunk_size)
    if np.ndim(x) != 2:
        raise ValueError(f"x: expected inputs of shape [n, d], got {np.shape(x)}")
    n, d = x.shape
    if y.shape != (n,):
        raise ValueError(f"y: expected shape [{n}] to match x [{n}, {d}], got {y.shape}")

    def objective(p: Particles) -> jax.Array:
        m = p.positions.shape[0]
        c = chunk_size or int(np.clip(2**20 // m, 32, n))
        c = min(c, n)
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
        return total / n + l2 * jnp.sum(p.weights * jnp.sum(p.positions**2, axis=1))

    return objective


def fourier_features(x: jax.Array, cutoff: int) -> jax.Array:
    """Real low-pass Fourier features on the torus [0, 1): ``[m, 2 cutoff + 1]``.

    ``phi(x) = (1, sqrt 2 cos(2 pi k x), sqrt 2 sin(2 pi k x))_{k = 1..cutoff}`` for ``x: [m]``
    or ``[m, 1]`` (orthonormal on [0, 1)).
    """
    _checks.check_positive_int("cutoff", cutoff)
    x = jnp.reshape(x, (-1, 1))
    k = jnp.arange(1, cutoff + 1, dtype=x.dtype)[None, :]
    ang = 2 * jnp.pi * k * x
    ones = jnp.ones_like(x)
    return jnp.concatenate([ones, jnp.sqrt(2.0) * jnp.cos(ang), jnp.sqrt(2.0) * jnp.sin(ang)], 1)


def sparse_deconvolution(
    measurements: jax.Array, *, cutoff: int, reg: float
) -> Callable[[Particles], jax.Array]:
    """Sparse deconvolution on the torus from low-pass Fourier measurements (Chizat and Bach
    2018; Chizat 2022): ``F(mu) = (1/2) |Phi mu - y|^2 + reg mu(T)`` for nonnegative ``mu``.

    ``Phi mu = sum_i w_i phi(x_i)`` with the ``2 cutoff + 1`` real features of `fourier_features`
    (positions ``[m, 1]``, read modulo 1); ``y = measurements``. The penalty ``reg`` times the
    total mass is the total-variation (BLASSO) penalty on nonnegative measures. Convex in ``mu``.
    """

    _checks.check_positive_int("cutoff", cutoff)
    _checks.check_positive("reg", reg, allow_zero=True)
    if np.shape(measurements) != (2 * cutoff + 1,):
        raise ValueError(
            f"measurements: expected shape [2 cutoff + 1] = [{2 * cutoff + 1}], got "
            f"{np.shape(measurements)}"
        )

    def objective(p: Particles) -> jax.Array:
        pred = fourier_features(p.positions, cutoff).T @ p.weights
        return 0.5 * jnp.sum((pred - measurements) ** 2) + reg * jnp.sum(p.weights)

    return objective


def bilevel_two_layer_risk(
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Callable = "relu",
    ridge: float = 1e-3,
) -> Callable[[Particles], jax.Array]:
    """The bilevel reduction of a signed two-layer network: outer measure over hidden weights.

    For hidden neurons ``b_i`` (the particles, masses ``w_i``) the signed output weights solve the
    inner ridge problem exactly,

        G(mu) = min_a (1/2n) sum_n (sum_i w_i a_i phi(<b_i, z_n>) - y_n)^2
                + (ridge/2) sum_i w_i a_i^2,

    so the network can fit targets of any sign while ``mu`` stays a nonnegative measure on which
    mean-field Langevin dynamics acts (Wang, Mousavi-Hosseini and Chizat 2024, "Mean-field
    Langevin dynamics for signed measures via a bilevel approach"). The inner minimizer is
    ``a* = (Phi_w^T Phi_w / n + ridge W)^{-1} Phi_w^T y / n`` with ``Phi_w = Phi W``; by the
    envelope theorem ``grad G`` is the partial gradient at ``a*``, which autodiff through the
    solve reproduces. The lifting reduction, with ``a_i`` carried as a particle coordinate, is
    `two_layer_risk`.

    Args:
      x: ``[n, d]`` inputs; y: ``[n]`` targets.
      activation: name or callable ``phi``.
      ridge: ``> 0``, makes the inner problem strongly convex.
    """
    phi = get_activation(activation)
    _checks.check_positive("ridge", ridge)
    if np.ndim(x) != 2 or np.shape(y) != (np.shape(x)[0],):
        raise ValueError(f"y: expected x [n, d] and y [n], got {np.shape(x)} and {np.shape(y)}")
    n = x.shape[0]

    def inner(p: Particles):
        feats = phi(x @ p.positions.T) * p.weights[None, :]  # [n, m]
        gram = feats.T @ feats / n + ridge * jnp.diag(p.weights)
        a = jnp.linalg.solve(gram, feats.T @ y / n)
        return feats, a

    def objective(p: Particles) -> jax.Array:
        feats, a = inner(p)
        return 0.5 * jnp.mean((feats @ a - y) ** 2) + 0.5 * ridge * jnp.sum(p.weights * a**2)

    objective.output_weights = lambda p: inner(p)[1]  # type: ignore[attr-defined]
    return objective
