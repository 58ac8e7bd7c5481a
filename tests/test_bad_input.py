"""Bad input to the objectives, grids, closed forms and teachers: a ValueError naming it."""

import jax
import jax.numpy as jnp
import pytest
from flowax import dynamics, models

_GRID = dynamics.transport.TensorGrid((jnp.linspace(0, 1, 3), jnp.linspace(0, 1, 4)))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: dynamics.product_grid(scale=[]), "scale: expected a non-empty 1-D axis"),
        (lambda: dynamics.product_grid(), "axes"),
        (
            lambda: dynamics.measures.two_layer_risk(jnp.ones((5, 2)), jnp.ones(4)),
            r"y: expected shape \[5\]",
        ),
        (
            lambda: dynamics.measures.two_layer_risk(jnp.ones((5, 2)), jnp.ones(5), reg=-1.0),
            "^reg: expected",
        ),
        (lambda: dynamics.measures.two_layer_risk(jnp.ones(5), jnp.ones(5)), r"x: expected inputs"),
        (
            lambda: dynamics.measures.bilevel_two_layer_risk(
                jnp.ones((5, 2)), jnp.ones(5), reg=0.0
            ),
            "^reg: expected",
        ),
        (
            lambda: dynamics.measures.bilevel_two_layer_risk(jnp.ones((5, 2)), jnp.ones(3)),
            "y: expected",
        ),
        (
            lambda: dynamics.measures.sparse_deconvolution(jnp.ones(7), cutoff=2, reg=0.1),
            r"measurements: expected shape \[2 cutoff \+ 1\] = \[5\]",
        ),
        (lambda: dynamics.measures.sparse_deconvolution(jnp.ones(5), cutoff=2, reg=-0.1), "reg"),
        (lambda: dynamics.measures.fourier_features(jnp.ones(3), 0), "cutoff"),
        (lambda: dynamics.transport.gaussian_entropic_ot(0.0, 1.0, 0.0, 1.0, lam=0.0), "lam"),
        (
            lambda: dynamics.transport.gaussian_entropic_ot(
                jnp.zeros(2), jnp.eye(2), jnp.zeros(3), jnp.eye(3), lam=0.1
            ),
            "mean_b",
        ),
        (
            lambda: dynamics.transport.gaussian_barycenter(
                jnp.zeros((2, 1)), jnp.ones(3), jnp.ones(2) / 2, lam=0.1, tau=0.1
            ),
            "variances",
        ),
        (
            lambda: dynamics.transport.gaussian_barycenter(
                jnp.zeros((2, 1)), jnp.ones(2), jnp.ones(2) / 2, lam=0.1, tau=0.0
            ),
            "tau",
        ),
        (lambda: dynamics.measures.log_annealing(-1.0), "temperature0"),
        (
            lambda: dynamics.transport.barycenter_fixed_support(
                _GRID, jnp.ones((2, 3, 3)) / 9, jnp.ones(2) / 2, lam=0.1, tau=0.1, mode="fast"
            ),
            "mode: expected one of",
        ),
        (
            lambda: dynamics.transport.barycenter_fixed_support(
                _GRID,
                jnp.ones((2, 12)) / 12,
                jnp.ones(2) / 2,
                lam=0.1,
                tau=0.1,
                overrelaxation=2.0,
            ),
            r"overrelaxation: expected a scalar in \(0, 2\)",
        ),
        (
            lambda: dynamics.transport.barycenter_fixed_support(
                _GRID, jnp.ones((2, 4, 3)) / 12, jnp.ones(2) / 2, lam=0.1, tau=0.1
            ),
            r"measures: expected .* \[K, 12\] or \[K, 3, 4\]",
        ),
        (
            lambda: dynamics.transport.barycenter_fixed_support(
                _GRID, jnp.ones((2, 12)) / 10, jnp.ones(2) / 2, lam=0.1, tau=0.1
            ),
            "measures: expected nonnegative finite histograms each summing to 1",
        ),
        (
            lambda: dynamics.transport.barycenter_fixed_support(
                _GRID,
                jnp.ones((2, 12)) / 12,
                jnp.ones(2) / 2,
                lam=0.1,
                tau=0.1,
                reference=jnp.ones(5),
            ),
            "reference",
        ),
        (
            lambda: dynamics.transport.barycenter_fixed_support(
                dynamics.transport.TensorGrid((jnp.ones(3), jnp.ones((2, 2)))),
                jnp.ones((1, 6)) / 6,
                jnp.ones(1),
                lam=0.1,
                tau=0.1,
            ),
            r"support.axes\[1\]",
        ),
        (
            lambda: models.multi_index_teacher(jax.random.key(0), d_in=3, n=4, k=4),
            r"^k: expected 1 <= k <= d_in",
        ),
        (lambda: models.linear_teacher(jax.random.key(0), d_in=6, d_out=6, n=4), "^n: whitening"),
    ],
)
def test_value_error_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_simplex_tolerance_is_dtype_aware():
    # float32 weights normalized as r / r.sum() are off from 1 by a few ulps: accepted (the
    # fixed 1e-9 tolerance rejected about a quarter of such draws); a real error is not
    import numpy as np
    from flowax.models import _checks

    rng = np.random.default_rng(0)
    for _ in range(200):
        r = rng.uniform(size=7).astype(np.float32)
        _checks.check_simplex("weights", r / r.sum(), 7)
    with pytest.raises(ValueError, match="^weights: expected nonnegative finite weights"):
        _checks.check_simplex("weights", np.full(7, 1 / 7, np.float32) * 1.001, 7)
