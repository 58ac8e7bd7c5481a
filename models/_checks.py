"""The one checks module: argument checks run before tracing, each raising a ValueError that
names the argument, what it got and what was expected.

It sits at the bottom of flowax's import graph (it imports only jax and numpy); `models`,
`dynamics` and `kernels` all validate through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array if it is a concrete numeric value, ``None`` if it is a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _numeric(v: np.ndarray) -> bool:
    return v.dtype != object and (
        np.issubdtype(v.dtype, np.number)
        or np.issubdtype(v.dtype, np.bool_)
        or jnp.issubdtype(v.dtype, jnp.inexact)  # bfloat16 and the other ml_dtypes floats
    )


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raises unless a concrete ``value`` is a finite real scalar > 0 (>= 0 with ``allow_zero``).

    Tracers pass (their values are checked where they are used, or reported as data).
    """
    want = ">= 0" if allow_zero else "> 0"
    if (
        callable(value)
        or isinstance(value, (str, bytes, bool, np.bool_, complex))
        or value is None
        or getattr(value, "dtype", None) == np.bool_
    ):
        raise ValueError(f"{name}: expected a finite scalar {want}, got {value!r}")
    v = concrete(value)
    if v is None:
        return
    if (
        not _numeric(v)
        or np.iscomplexobj(v)
        or v.ndim != 0
        or not np.isfinite(v).all()
        or (v < 0).any()
        or (not allow_zero and (v == 0).any())
    ):
        raise ValueError(f"{name}: expected a finite scalar {want}, got {value!r}")


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Returns ``int(value)`` for a Python or NumPy integer >= ``minimum``; raises otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Returns ``int(value)`` for a Python or NumPy integer >= 1; raises otherwise."""
    return check_int(name, value, minimum=1)


def check_option(name: str, value: Any, options) -> None:
    """Raises unless ``value`` is one of ``options``."""
    try:
        ok = value in options
    except TypeError:  # unhashable values
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {value!r}")


def check_finite_tree(name: str, tree: Any) -> None:
    """Raises if a pytree is empty, non-numeric, or (when concrete) has non-finite entries."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    if not leaves:
        raise ValueError(f"{name}: expected a non-empty pytree of arrays, got {tree!r}")
    if sum(int(np.size(leaf)) for _, leaf in leaves) == 0:
        shapes = [np.shape(leaf) for _, leaf in leaves]
        raise ValueError(f"{name}: expected at least one entry, got leaves of shapes {shapes}")
    for path, leaf in leaves:
        v = concrete(leaf)
        if v is None:
            continue
        if not _numeric(v):
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)}: expected a numeric array, got dtype {v.dtype}"
            )
        if not np.isfinite(v).all():
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)}: expected finite values, got "
                f"{int((~np.isfinite(v)).sum())} non-finite entries of {v.size}"
            )


def check_interval(t0: Any, t1: Any) -> None:
    """Raises unless concrete ``t0 < t1`` are finite real scalars."""
    for name, value in (("t0", t0), ("t1", t1)):
        if callable(value) or isinstance(value, (str, bytes, bool, complex)) or value is None:
            raise ValueError(f"{name}: expected a finite scalar, got {value!r}")
    a, b = concrete(t0), concrete(t1)
    for name, v in (("t0", a), ("t1", b)):
        if v is not None and (
            not _numeric(v) or np.iscomplexobj(v) or v.ndim != 0 or not np.isfinite(v).all()
        ):
            raise ValueError(f"{name}: expected a finite scalar, got {v!r}")
    if a is not None and b is not None and not float(b) > float(a):
        raise ValueError(f"t1: expected t1 > t0, got t1={float(b)}, t0={float(a)}")


def check_callable(name: str, fn: Any) -> None:
    if not callable(fn):
        raise ValueError(f"{name}: expected a callable, got {type(fn).__name__}")


def check_observables(observables: Any) -> dict[str, Callable]:
    """``{name: fn(t, state)}`` or None (no observables); returns a dict."""
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


def check_array(
    name: str,
    x: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    finite: bool = True,
    nonempty: bool = True,
) -> np.ndarray | None:
    """Raises unless ``x`` is a numeric array (of rank ``ndim``, non-empty, and with finite
    entries when concrete); returns its concrete value (None for a tracer)."""
    if x is None or isinstance(x, (str, bytes)) or callable(x):
        raise ValueError(f"{name}: expected a numeric array, got {x!r}")
    shape = np.shape(x) if hasattr(x, "shape") else None
    v = concrete(x)
    if v is not None:
        if not _numeric(v):
            raise ValueError(f"{name}: expected a numeric array, got dtype {v.dtype}")
        shape = v.shape
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if ranks is not None and len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{name}: expected an array of rank {want}, got shape {shape}")
    if nonempty and int(np.prod(shape)) == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {shape}")
    if v is not None and finite and not np.isfinite(v).all():
        raise ValueError(
            f"{name}: expected finite values, got {int((~np.isfinite(v)).sum())} non-finite "
            f"entries of {v.size}"
        )
    return v


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_scalar_fn(name: str, fn: Any, *example: Any, call: str | None = None) -> None:
    """Raises unless ``fn(*example)`` traces to a real scalar; an exception raised while tracing
    it (a wrong signature, shapes that do not fit) becomes a ValueError naming ``name``."""
    out = trace_fn(name, fn, *example, call=call)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{name}: expected a function returning a real scalar, got {got}")


def _shapes(tree: Any) -> str:
    return str(jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree))


def trace_fn(name: str, fn: Any, *example: Any, call: str | None = None) -> Any:
    """``jax.eval_shape(fn, *example)``, re-raising any error of ``fn`` as a ValueError that names
    ``name``, the call and the shapes it got."""
    check_callable(name, fn)
    try:
        return jax.eval_shape(fn, *example)
    except Exception as e:  # noqa: BLE001 -- any error of the user's function is reported
        call = call or f"{name}(...)"
        raise ValueError(
            f"{name}: calling {call} on arguments of shapes {_shapes(example)} failed with "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e


def simplex_tolerance(dtype: Any, k: int) -> float:
    """How far from 1 the sum of ``k`` weights of ``dtype`` may be: ``16 k eps``, at least 1e-9.

    Normalizing ``r / r.sum()`` in float32 leaves the sum off by up to a few ulps per entry;
    float64 sums get the fixed floor 1e-9 (weights typed in by hand, e.g. thirds to 10 digits).
    """
    dt = np.dtype(dtype) if np.issubdtype(np.dtype(dtype), np.floating) else np.dtype(np.float64)
    return max(16 * k * float(np.finfo(dt).eps), 1e-9)


def check_simplex(name: str, weights: Any, k: int) -> None:
    """Raises unless ``weights`` has shape ``[k]`` and (when concrete) lies on the simplex, to a
    dtype-aware tolerance (`simplex_tolerance`)."""
    if np.shape(weights) != (k,):
        raise ValueError(f"{name}: expected shape [{k}] (one per measure), got {np.shape(weights)}")
    w = concrete(weights)
    if w is None:
        return
    if not _numeric(w):
        raise ValueError(f"{name}: expected numeric weights, got dtype {w.dtype}")
    tol = simplex_tolerance(w.dtype, k)
    if np.any(w < 0) or not np.isfinite(w).all() or abs(float(w.sum()) - 1) > tol:
        raise ValueError(
            f"{name}: expected nonnegative finite weights summing to 1, got sum {w.sum()} "
            f"(off by {abs(float(w.sum()) - 1):.3g}, tolerance {tol:.3g})"
        )


def check_key(name: str, key: Any) -> None:
    """Raises unless ``key`` is a PRNG key array (new-style ``jax.random.key`` or raw uint32)."""
    if key is None:
        raise ValueError(f"{name}: expected a PRNG key (jax.random.key(seed)), got None")
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and np.shape(key)[-1:] == (2,):
        return
    raise ValueError(
        f"{name}: expected a PRNG key (jax.random.key(seed)), got {type(key).__name__}"
        + (f" of dtype {dtype}" if dtype is not None else "")
    )
