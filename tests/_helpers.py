"""Shared test helpers: tree comparison and the per-dtype tolerance table."""

import jax
import numpy as np

# Relative tolerances for results that should agree to rounding, per dtype; call sites tighten
# or loosen them where the mathematics says why (a solver tolerance, a statistical error).
RTOL = {np.dtype("float32"): 1e-5, np.dtype("float64"): 1e-10}


def rtol_for(x) -> float:
    return RTOL[np.dtype(np.asarray(x).dtype)]


def tree_allclose(a, b, *, rtol=None, atol=0.0):
    """Asserts that two pytrees have one structure and leaves that agree (NaNs equal)."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb, (ta, tb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, (x.shape, y.shape)
        tol = rtol_for(x) if rtol is None and np.issubdtype(x.dtype, np.floating) else (rtol or 0)
        np.testing.assert_allclose(x, y, rtol=tol, atol=atol, equal_nan=True)


def tree_dtypes(tree):
    """The set of dtypes of the floating leaves of a pytree."""
    dtypes = {
        np.dtype(getattr(x, "dtype", None) or np.asarray(x).dtype)
        for x in jax.tree_util.tree_leaves(tree)
    }
    return {d for d in dtypes if np.issubdtype(d, np.floating)}
