"""Shared test setup: float64, strict rank promotion, a key fixture, tolerances."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# One tolerance table per dtype (relative); call sites tighten it where the math allows.
RTOL = {np.dtype("float32"): 1e-5, np.dtype("float64"): 1e-10}


@pytest.fixture
def key():
    return jax.random.key(0)
