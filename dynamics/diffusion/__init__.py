"""flowax.dynamics.diffusion: denoising diffusion as dynamics.

Forward processes (`OrnsteinUhlenbeck`, `VariancePreserving`, `VarianceExploding`: ``X_t = mu_t
X_0 + sigma_t Z``), the empirical optimal score of a finite dataset (`empirical_score`, streamed
over data chunks, with its denoiser and log density) and Gaussian closed forms, kernel-smoothed
scores (`kernel_smoothed_score`, `smooth_score`), sampling by the reverse SDE or the
probability-flow ODE through the one `integrate` (`sample`), memorization metrics
(`nearest_neighbours`, `memorized_fraction`, `mmd`, `excess_risk`) and the denoising
score-matching loss (`dsm_loss`) for training a score `Model` with `gradient_descent` or optax.
"""

from ._dsm import WEIGHTINGS, dsm_loss
from ._metrics import excess_risk, memorized_fraction, mmd, nearest_neighbours
from ._processes import PROCESSES, OrnsteinUhlenbeck, VarianceExploding, VariancePreserving
from ._sample import SAMPLE_METHODS, sample
from ._scores import (
    EmpiricalScore,
    empirical_score,
    gaussian_mixture_score,
    gaussian_score,
)
from ._smoothing import SMOOTHING_METHODS, kernel_smoothed_score, smooth_score

__all__ = [
    "PROCESSES",
    "SAMPLE_METHODS",
    "SMOOTHING_METHODS",
    "WEIGHTINGS",
    "EmpiricalScore",
    "OrnsteinUhlenbeck",
    "VarianceExploding",
    "VariancePreserving",
    "dsm_loss",
    "empirical_score",
    "excess_risk",
    "gaussian_mixture_score",
    "gaussian_score",
    "kernel_smoothed_score",
    "memorized_fraction",
    "mmd",
    "nearest_neighbours",
    "sample",
    "smooth_score",
]
