"""The empirical neural tangent kernel of any ``apply(params, x)``.

    Theta(x1, x2) = J(x1) J(x2)^T,   J(x) = d apply(params, x) / d params,

summed over every leaf of the params pytree (Jacot, Gabriel and Hongler 2018). The result has
the shape convention of ``neural_tangents.empirical_ntk_fn(f, trace_axes, vmap_axes=0)(x1, x2,
params)``: ``[n1, n2]`` followed, for each output axis (after the batch axis) that is not in
``trace_axes``, by the pair of its sizes ``(o, o)``; traced axes are averaged (their trace
divided by their size). For outputs ``[n, o]``: ``trace_axes=()`` gives ``[n1, n2, o, o]``,
``trace_axes=(-1,)`` gives ``[n1, n2]``.

The model is taken to act on each example independently (no batch statistics): per-example
Jacobians are computed under ``vmap``, like neural-tangents' ``vmap_axes=0``.

Methods (Novak, Sohl-Dickstein and Schoenholz, "Fast finite width neural tangent kernel",
ICML 2022, sections 3-4):
- ``"jacobian"``: per-example Jacobians by reverse mode, contracted leaf by leaf; memory
  ``(n1 + n2) o P``.
- ``"ntvp"``: kernel-vector products, a VJP at ``x2`` and a JVP at ``x1`` per output of ``x2``;
  never stores a Jacobian (memory ``o P`` per output block).
- ``"structured"``: for every parameter matrix ``W`` used once as ``y = h @ W`` (dense layers,
  found by reading the model's jaxpr), its Jacobian is the outer product of the layer input ``h``
  and the cotangent ``delta = df / dy``, so its NTK term is ``(h1 . h2) (delta1 . delta2)`` and
  ``J_W`` is never formed; remaining leaves (biases, convolutions, norms) go through
  ``"jacobian"``.
- ``"auto"``: ``"structured"`` when dense matrices hold at least half of the parameters, else
  ``"jacobian"`` when its two Jacobians fit in ``2**29`` entries (4 GiB in float64), else
  ``"ntvp"``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..models import _checks
from . import _structured

METHODS = ("auto", "jacobian", "ntvp", "structured")
_JACOBIAN_ENTRIES_LIMIT = 2**29


def _per_example(apply: Callable) -> Callable:
    return lambda p, x: apply(p, x[None])[0]


def _canonical_trace_axes(trace_axes: Sequence[int], out_ndim: int) -> tuple[int, ...]:
    """Output axes (1-based, batch = 0) to trace over."""
    axes = []
    for a in trace_axes:
        if not isinstance(a, (int, np.integer)) or not -out_ndim - 1 <= a <= out_ndim:
            raise ValueError(
                f"trace_axes: expected output axes in [-{out_ndim}, {out_ndim}] (not the batch "
                f"axis 0), got {tuple(trace_axes)}"
            )
        a = int(a) % (out_ndim + 1)
        if a == 0:
            raise ValueError(f"trace_axes: the batch axis 0 cannot be traced, got {trace_axes}")
        axes.append(a)
    return tuple(sorted(set(axes)))


def contract_jacobians(j1, j2, out_shape: tuple[int, ...], trace_axes: tuple[int, ...]):
    """``sum_leaves J1 . J2`` in the kernel layout of the module docstring.

    Args:
      j1, j2: pytrees of per-example Jacobians, leaves ``[n, *out_shape, *leaf_shape]``.
      out_shape: per-example output shape; trace_axes: canonical (1-based) axes to trace.
    """
    k = len(out_shape)
    pool = list(string.ascii_letters)
    a, b, o1 = pool[0], pool[1], pool[2 : 2 + k]
    free = pool[2 + k :]
    o2 = [o1[i] if i + 1 in trace_axes else free.pop(0) for i in range(k)]
    pairs = "".join(c for i in range(k) if i + 1 not in trace_axes for c in (o1[i], o2[i]))
    total = 0.0
    for l1, l2 in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2), strict=True):
        leaf = "".join(free[: l1.ndim - 1 - k])
        spec = f"{a}{''.join(o1)}{leaf},{b}{''.join(o2)}{leaf}->{a}{b}{pairs}"
        total = total + jnp.einsum(spec, l1, l2)
    size = math.prod(out_shape[i - 1] for i in trace_axes)
    return total / size


def _jacobian_method(apply, params, x1, x2, out_shape, trace_axes):
    jac = jax.vmap(jax.jacrev(_per_example(apply)), in_axes=(None, 0))
    j1 = jac(params, x1)
    j2 = j1 if x2 is None else jac(params, x2)
    return contract_jacobians(j1, j2, out_shape, trace_axes)


def _ntvp_method(apply, params, x1, x2, out_shape, trace_axes):
    f = _per_example(apply)
    x2_ = x1 if x2 is None else x2
    _, jvp1 = jax.linearize(lambda p: jax.vmap(f, (None, 0))(p, x1), params)
    n_out = math.prod(out_shape)
    basis = jnp.eye(n_out, dtype=jax.eval_shape(f, params, x1[0]).dtype).reshape(n_out, *out_shape)

    def column(xj):  # Theta[:, j] as [n_out (of x2[j]), n1, *out1]
        _, vjp = jax.vjp(lambda p: f(p, xj), params)
        tangents = jax.vmap(lambda e: vjp(e)[0])(basis)
        return jax.vmap(jvp1)(tangents)  # [n_out, n1, *out1]

    cols = jax.lax.map(column, x2_)  # [n2, n_out, n1, *out1]
    k = len(out_shape)
    cols = cols.reshape(cols.shape[0], *out_shape, cols.shape[2], *out_shape)
    # -> [n1, n2, o1_0, o2_0, o1_1, o2_1, ...]
    perm = [k + 1, 0]
    for i in range(k):
        perm += [k + 2 + i, 1 + i]
    theta = jnp.transpose(cols, perm)
    for i in sorted(trace_axes, reverse=True):
        axis = 2 + 2 * (i - 1)
        theta = jnp.trace(theta, axis1=axis, axis2=axis + 1) / out_shape[i - 1]
    return theta


def empirical_ntk(
    apply: Callable,
    params,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    method: str = "auto",
    trace_axes: Sequence[int] = (-1,),
    batch_size: int | None = None,
) -> jax.Array:
    """The empirical NTK ``J(x1) J(x2)^T`` of ``apply`` at ``params`` (module docstring).

    Args:
      apply: ``apply(params, x) -> [n, *out]``, acting on each example independently.
      params: any pytree of arrays.
      x1: ``[n1, *in]`` inputs; x2: ``[n2, *in]`` or ``None`` (then ``x2 = x1``, and the
        Jacobians of ``x1`` are computed once).
      method: ``"auto"``, ``"jacobian"``, ``"ntvp"`` or ``"structured"``.
      trace_axes: output axes to average over; default ``(-1,)`` (the logits), as
        neural-tangents' ``empirical_ntk_fn``; ``()`` keeps every output pair.
      batch_size: compute the kernel in blocks of ``batch_size`` x ``batch_size`` examples (each
        block compiled once), for kernels whose Jacobians do not fit in memory at once.

    Returns:
      ``[n1, n2, (o, o) for each untraced output axis]``.
    """
    _checks.check_option("method", method, METHODS)
    _checks.check_array("x1", x1)
    if x2 is not None:
        _checks.check_array("x2", x2)
    x1 = jnp.asarray(x1)
    if x1.ndim < 1 or x1.shape[0] == 0:
        raise ValueError(f"x1: expected a batch [n1, ...] with n1 >= 1, got shape {x1.shape}")
    if x2 is not None:
        x2 = jnp.asarray(x2)
        if x2.shape[1:] != x1.shape[1:] or x2.shape[0] == 0:
            raise ValueError(
                f"x2: expected shape [n2, {', '.join(map(str, x1.shape[1:]))}] like x1, "
                f"got {x2.shape}"
            )
    if batch_size is not None:
        batch_size = _checks.check_positive_int("batch_size", batch_size)
    _checks.check_callable("apply", apply)
    try:
        out = jax.eval_shape(apply, params, x1[:1])
    except (TypeError, ValueError) as err:  # shapes or types the model rejects, before tracing
        raise ValueError(
            f"apply: apply(params, x1[:1]) failed for the given params and x1 of shape "
            f"{x1.shape}: {type(err).__name__}: {err}"
        ) from err
    if not hasattr(out, "shape") or len(out.shape) < 1 or out.shape[0] != 1:
        raise ValueError(
            f"apply: expected an array output [n, *out] with the batch axis first, got {out}"
        )
    out_shape = tuple(out.shape[1:])
    trace = _canonical_trace_axes(tuple(trace_axes), len(out_shape))
    if method == "auto":
        method = _choose(apply, params, x1, x2, out_shape)
    fn = {
        "jacobian": _jacobian_method,
        "ntvp": _ntvp_method,
        "structured": _structured.structured_ntk,
    }[method]
    if batch_size is None:
        return fn(apply, params, x1, x2, out_shape, trace)
    return _blocked(fn, apply, params, x1, x2, out_shape, trace, batch_size)


def _choose(apply, params, x1, x2, out_shape) -> str:
    p_total = sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params))
    dense = _structured.dense_parameter_count(apply, params, x1[0])
    if p_total and dense >= p_total / 2:
        return "structured"
    n = x1.shape[0] + (0 if x2 is None else x2.shape[0])
    if n * math.prod(out_shape) * p_total <= _JACOBIAN_ENTRIES_LIMIT:
        return "jacobian"
    return "ntvp"


def _blocked(fn, apply, params, x1, x2, out_shape, trace, bs):
    """Blocks of ``bs`` rows and columns (the last ones padded by repeating the first example,
    then cut): ``lax.map`` over row blocks of a ``lax.map`` over column blocks, with ``params``
    an argument of the compiled block (never a constant baked into it)."""

    def pad(x):
        n = x.shape[0]
        m = -(-n // bs) * bs
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (m - n, *x.shape[1:]))])
        return x.reshape(m // bs, bs, *x.shape[1:]), n

    p1, n1 = pad(x1)
    p2, n2 = pad(x1 if x2 is None else x2)

    def row(p, a):
        blocks = jax.lax.map(lambda b: fn(apply, p, a, b, out_shape, trace), p2)  # [c, bs, bs, ..]
        blocks = jnp.moveaxis(blocks, 0, 1)  # [bs, c, bs, ...]
        return blocks.reshape(bs, -1, *blocks.shape[3:])

    rows = jax.lax.map(lambda a: row(params, a), p1)  # [r, bs, n2p, ...]
    kernel = rows.reshape(-1, *rows.shape[2:])
    return kernel[:n1, :n2]
