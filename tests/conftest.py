"""Shared test setup: float64, strict rank promotion, a key fixture, tolerances."""

import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # `import _helpers` from any test module

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# The per-dtype tolerance table and tree comparison live in tests/_helpers.py.


@pytest.fixture
def key():
    return jax.random.key(0)


# Property-based tests (hypothesis): deterministic (derandomized, no example database, no
# deadline: the first example of a shape pays its compilation).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "flowax",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=20,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("flowax")
