"""flowax.kernels: empirical and infinite-width neural tangent kernels, linearized dynamics,
kernel monitors, curvature (Hessian / Gauss-Newton products, Lanczos, SLQ, trace), and feature
learning monitors (feature updates vs the backward pass, steering per-layer rates, the muP
coordinate check)."""

from ._coord import CoordCheck, coord_check
from ._steering import SteerState, steer_feature_speed
from ._tracking import SharpnessPath, Tracked, TrackState, sharpness_path, track_sharpness
from .curvature import (
    Eigen,
    SpectralDensity,
    TraceEstimate,
    gnvp,
    hessian_trace,
    hvp,
    sharpness,
    spectral_density,
    top_eigenpairs,
)
from .empirical import METHODS, empirical_ntk
from .features import FeatureUpdates, feature_updates
from .infinite import CLOSED_FORMS, NORMALIZATIONS, Kernel, mlp_kernel
from .linearized import kernel_flow, linearize
from .monitors import effective_rank, kernel_alignment, ntk_drift

__all__ = [
    "CLOSED_FORMS",
    "CoordCheck",
    "Eigen",
    "FeatureUpdates",
    "SharpnessPath",
    "SpectralDensity",
    "SteerState",
    "TraceEstimate",
    "TrackState",
    "Tracked",
    "METHODS",
    "NORMALIZATIONS",
    "Kernel",
    "coord_check",
    "effective_rank",
    "empirical_ntk",
    "feature_updates",
    "gnvp",
    "hessian_trace",
    "hvp",
    "kernel_alignment",
    "kernel_flow",
    "linearize",
    "mlp_kernel",
    "ntk_drift",
    "sharpness",
    "sharpness_path",
    "spectral_density",
    "steer_feature_speed",
    "top_eigenpairs",
    "track_sharpness",
]
