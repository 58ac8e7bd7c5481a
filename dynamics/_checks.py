"""Argument checks run before tracing: bad input fails with a ValueError that names it."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array if it is a concrete value, ``None`` if it is a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raises unless a concrete ``value`` is finite and > 0 (>= 0 with ``allow_zero``)."""
    v = concrete(value)
    if v is None:
        return
    if (
        v.size != 1
        or not np.isfinite(v).all()
        or (v < 0).any()
        or (not allow_zero and (v == 0).any())
    ):
        want = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite scalar {want}, got {value!r}")


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def check_finite_tree(name: str, tree: Any) -> None:
    """Raises if a concrete pytree has non-finite entries (tracers are skipped)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise ValueError(f"{name}: expected a non-empty pytree of arrays, got {tree!r}")
    for path, leaf in leaves:
        v = concrete(leaf)
        if v is None:
            continue
        if not np.issubdtype(v.dtype, np.number):
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)}: expected a numeric array, got dtype {v.dtype}"
            )
        if not np.isfinite(v).all():
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)}: expected finite values, got "
                f"{int((~np.isfinite(v)).sum())} non-finite entries of {v.size}"
            )


def check_interval(t0: Any, t1: Any) -> None:
    a, b = concrete(t0), concrete(t1)
    for name, v in (("t0", a), ("t1", b)):
        if v is not None and (v.size != 1 or not np.isfinite(v).all()):
            raise ValueError(f"{name}: expected a finite scalar, got {v!r}")
    if a is not None and b is not None and not float(b) > float(a):
        raise ValueError(f"t1: expected t1 > t0, got t1={float(b)}, t0={float(a)}")


def check_callable(name: str, fn: Any) -> None:
    if not callable(fn):
        raise ValueError(f"{name}: expected a callable, got {type(fn).__name__}")


def check_observables(observables: Any) -> dict:
    if observables is None:
        return {}
    if not isinstance(observables, dict):
        raise ValueError(
            f"observables: expected a dict name -> fn(t, state), got {type(observables).__name__}"
        )
    for k, fn in observables.items():
        if not isinstance(k, str):
            raise ValueError(f"observables: expected str names, got {k!r}")
        if not callable(fn):
            raise ValueError(f"observables[{k!r}]: expected a callable fn(t, state)")
    return dict(observables)


def check_scalar_fn(name: str, fn: Any, *example: Any) -> None:
    """Raises unless ``fn(*example)`` traces to a real scalar."""
    out = jax.eval_shape(fn, *example)
    if not (hasattr(out, "shape") and out.shape == () and np.issubdtype(out.dtype, np.floating)):
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{name}: expected a function returning a real scalar, got {got}")


def check_simplex(name: str, weights: Any, k: int) -> None:
    """Raises unless ``weights`` has shape ``[k]`` and (when concrete) lies on the simplex."""
    if np.shape(weights) != (k,):
        raise ValueError(f"{name}: expected shape [{k}] (one per measure), got {np.shape(weights)}")
    w = concrete(weights)
    if w is not None and (np.any(w < 0) or not np.isfinite(w).all() or abs(w.sum() - 1) > 1e-9):
        raise ValueError(
            f"{name}: expected nonnegative finite weights summing to 1, got sum {w.sum()} "
            f"(off by {abs(w.sum() - 1):.3g})"
        )
