"""Structured NTK of dense layers, found by reading the model's jaxpr.

For a parameter matrix ``W`` used exactly once, as ``y = dot_general(h, W)`` contracting the
last axis of ``h`` (``h @ W`` or ``h @ W.T``), the Jacobian of output ``o`` is
``sum_B h[B] (x) delta_o[B]`` with ``delta_o = d f_o / d y`` and ``B`` the other axes of ``h``,
so its NTK term is ``sum_{B, B'} (h1[B] . h2[B']) (delta1_o[B] . delta2_o'[B'])`` (Novak,
Sohl-Dickstein and Schoenholz 2022, the dense-layer rule). The interpreter below re-evaluates
the jaxpr of one example with a zero "tap" added to each such ``y``; the VJP with respect to the
taps gives every ``delta``, the forward pass records every ``h``. Leaves used any other way fall
back to per-example Jacobians.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

_CALLS = ("pjit", "jit", "closed_call", "core_call")


def _inner(eqn):
    if eqn.primitive.name in _CALLS:
        inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
        if isinstance(inner, jcore.ClosedJaxpr):
            return inner.jaxpr, inner.consts
        if isinstance(inner, jcore.Jaxpr):
            return inner, ()
    return None


def _sub_leaves(inner_jaxpr, eqn, leaf_of):
    """The leaf indices of a call's inner variables that receive a parameter leaf."""
    return {
        iv: leaf_of[v]
        for iv, v in zip(inner_jaxpr.invars, eqn.invars, strict=True)
        if isinstance(v, jcore.Var) and v in leaf_of
    }


def _dense_rhs(eqn, leaf_of):
    """The leaf ``W`` if ``eqn`` is ``dot_general(h, W)`` contracting h's last axis, else None."""
    if eqn.primitive.name != "dot_general" or len(eqn.invars) != 2:
        return None
    lhs, rhs = eqn.invars
    if not isinstance(rhs, jcore.Var) or rhs not in leaf_of or isinstance(lhs, jcore.Literal):
        return None
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    if lb or rb or len(rhs.aval.shape) != 2 or len(lc) != 1:
        return None
    if tuple(lc) != (len(lhs.aval.shape) - 1,) or tuple(rc) not in ((0,), (1,)):
        return None
    return leaf_of[rhs]


def _analyze(jaxpr, leaf_of, uses, dense):
    for eqn in jaxpr.eqns:
        inner = _inner(eqn)
        if inner is not None:
            _analyze(inner[0], _sub_leaves(inner[0], eqn, leaf_of), uses, dense)
            continue
        w = _dense_rhs(eqn, leaf_of)
        for v in eqn.invars:
            if isinstance(v, jcore.Var) and v in leaf_of:
                uses[leaf_of[v]] = uses.get(leaf_of[v], 0) + 1
        if w is not None:
            dense[w] = tuple(eqn.outvars[0].aval.shape)
    for v in jaxpr.outvars:  # a leaf returned as is
        if isinstance(v, jcore.Var) and v in leaf_of:
            uses[leaf_of[v]] = uses.get(leaf_of[v], 0) + 2


def _eval(jaxpr, consts, args, leaf_of, taps, captured):
    env = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts, strict=True):
        env[v] = val
    for v, val in zip(jaxpr.invars, args, strict=True):
        env[v] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        inner = _inner(eqn)
        if inner is not None:
            sub = _sub_leaves(inner[0], eqn, leaf_of)
            outs = _eval(inner[0], inner[1], invals, sub, taps, captured)
        else:
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            if not eqn.primitive.multiple_results:
                outs = [outs]
            w = _dense_rhs(eqn, leaf_of)
            if w is not None and w in taps:
                captured[w] = invals[0]
                outs = [outs[0] + taps[w]]
        for v, val in zip(eqn.outvars, outs, strict=True):
            env[v] = val
    return [read(v) for v in jaxpr.outvars]


class _Plan:
    """The jaxpr of one example and the dense leaves found in it."""

    def __init__(self, apply, params, x0):
        leaves, self.treedef = jax.tree_util.tree_flatten(params)
        self.n_leaves = len(leaves)

        def g(leaves, x):
            return apply(jax.tree_util.tree_unflatten(self.treedef, leaves), x[None])[0]

        self.closed = jax.make_jaxpr(g)(leaves, x0)
        invars = self.closed.jaxpr.invars
        self.leaf_of = {v: i for i, v in enumerate(invars[: self.n_leaves])}
        uses, dense = {}, {}
        _analyze(self.closed.jaxpr, self.leaf_of, uses, dense)
        self.dense = {i: shape for i, shape in dense.items() if uses.get(i) == 1}
        self.rest = [i for i in range(self.n_leaves) if i not in self.dense]
        self.sizes = [math.prod(leaf.shape) for leaf in leaves]

    def run(self, leaves, x, taps):
        captured = {}
        (out,) = _eval(
            self.closed.jaxpr, self.closed.consts, [*leaves, x], self.leaf_of, taps, captured
        )
        return out, captured


def dense_parameter_count(apply, params, x0) -> int:
    """Number of parameters in matrices the structured method handles."""
    plan = _Plan(apply, params, x0)
    return sum(plan.sizes[i] for i in plan.dense)


def _features(plan, leaves, x, out_shape):
    """Per example: layer inputs ``h`` [nB, din] and cotangents ``delta`` [*out, nB, dout]."""
    dtype = jnp.result_type(*leaves) if leaves else x.dtype
    taps = {i: jnp.zeros(shape, dtype) for i, shape in plan.dense.items()}
    out, vjp, hs = jax.vjp(lambda t: plan.run(leaves, x, t), taps, has_aux=True)
    n_out = math.prod(out_shape)
    basis = jnp.eye(n_out, dtype=out.dtype).reshape(n_out, *out_shape)
    deltas = jax.vmap(lambda e: vjp(e)[0])(basis)
    feats = {}
    for i in plan.dense:
        h = hs[i].reshape(-1, hs[i].shape[-1])
        d = deltas[i].reshape(*out_shape, -1, deltas[i].shape[-1])
        feats[i] = (h, d)
    return feats


def structured_ntk(apply, params, x1, x2, out_shape, trace_axes):
    from .empirical import contract_jacobians  # one contraction convention for both

    plan = _Plan(apply, params, x1[0])
    leaves = jax.tree_util.tree_leaves(params)
    feats = jax.vmap(lambda x: _features(plan, leaves, x, out_shape))
    f1 = feats(x1)
    f2 = f1 if x2 is None else feats(x2)
    k = len(out_shape)
    letters = "klmnopqrstuvwxyz"  # h, delta and examples use A B X Y i j
    o1 = list(letters[:k])
    o2 = [o1[i] if i + 1 in trace_axes else letters[k + i] for i in range(k)]
    pairs = "".join(c for i in range(k) if i + 1 not in trace_axes for c in (o1[i], o2[i]))
    spec = f"AXi,BYi,A{''.join(o1)}Xj,B{''.join(o2)}Yj->AB{pairs}"  # h1, h2, delta1, delta2
    size = math.prod(out_shape[i - 1] for i in trace_axes)

    def block(sl1, sl2):
        total = 0.0
        for i in plan.dense:
            (h1, d1), (h2, d2) = f1[i], f2[i]
            total = total + jnp.einsum(spec, h1[sl1], h2[sl2], d1[sl1], d2[sl2], optimize="optimal")
        return total / size

    n1 = x1.shape[0]
    if x2 is None and n1 >= 2:
        # symmetric: Theta(B, A) is Theta(A, B) with examples and output pairs swapped, so 3 of
        # the 4 blocks of a 2 x 2 split are computed (3/4 of the flops)
        a, b = slice(0, n1 // 2), slice(n1 // 2, n1)
        ab = block(a, b)
        swap = [1, 0] + [j for p in range(2, ab.ndim, 2) for j in (p + 1, p)]
        theta = jnp.concatenate(
            [
                jnp.concatenate([block(a, a), ab], axis=1),
                jnp.concatenate([jnp.transpose(ab, swap), block(b, b)], axis=1),
            ],
            axis=0,
        )
    else:
        theta = block(slice(None), slice(None))
    if plan.rest:
        rest = [leaves[i] for i in plan.rest]

        def g(rest_leaves, x):
            full = list(leaves)
            for i, leaf in zip(plan.rest, rest_leaves, strict=True):
                full[i] = leaf
            p = jax.tree_util.tree_unflatten(plan.treedef, full)
            return apply(p, x[None])[0]

        jac = jax.vmap(jax.jacrev(g), in_axes=(None, 0))
        j1 = jac(rest, x1)
        j2 = j1 if x2 is None else jac(rest, x2)
        theta = theta + contract_jacobians(j1, j2, out_shape, trace_axes)
    return theta
