"""The one save specification of `integrate` and `iterate`: ``n_save`` points spaced by
``spacing`` over the run (default 101, linear), or explicit times / steps.

Both drivers place their save points at the same normalized positions ``s in [0, 1]``: a flow
at ``t = t0 + s (t1 - t0)``, a discrete loop after ``k = round(s * steps)`` steps (repeated steps
merged, so a short loop saves every step).
"""

from __future__ import annotations

import numpy as np

from ..models import _checks

SPACINGS = ("linear", "log")
LOG_DECADES = 5.0  # spacing="log": s = 0, then 10**linspace(-5, 0, n_save - 1)
DEFAULT_N_SAVE = 101


def positions(n_save: int, spacing: str) -> np.ndarray:
    """``[n_save]`` normalized save positions in ``[0, 1]``, starting at 0 and ending at 1."""
    n_save = _checks.check_positive_int("n_save", n_save)
    _checks.check_option("spacing", spacing, SPACINGS)
    if n_save == 1:
        return np.ones(1)
    if spacing == "linear":
        return np.linspace(0.0, 1.0, n_save)
    return np.concatenate([[0.0], np.logspace(-LOG_DECADES, 0.0, n_save - 1)])


def save_steps(steps: int, n_save: int, spacing: str, explicit=None) -> np.ndarray:
    """Sorted distinct step indices in ``[0, steps]`` after which a discrete loop saves."""
    if explicit is not None:
        k = np.asarray(explicit)
        if (
            k.ndim != 1
            or k.size == 0
            or not np.issubdtype(k.dtype, np.integer)
            or np.any(np.diff(k) <= 0)
            or k[0] < 0
            or k[-1] > steps
        ):
            raise ValueError(
                f"save_steps: expected a non-empty increasing 1-D int array within [0, {steps}], "
                f"got {explicit!r}"
            )
        return k.astype(np.int64)
    return np.unique(np.round(positions(n_save, spacing) * steps).astype(np.int64))
