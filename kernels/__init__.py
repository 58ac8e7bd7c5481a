"""flowax.kernels: empirical and infinite-width neural tangent kernels, linearized dynamics,
kernel monitors, curvature (Hessian / Gauss-Newton products, Lanczos, SLQ, trace)."""

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
from .infinite import CLOSED_FORMS, NORMALIZATIONS, Kernel, mlp_kernel
from .linearized import kernel_flow, linearize
from .monitors import effective_rank, kernel_alignment, ntk_drift

__all__ = [
    "CLOSED_FORMS",
    "Eigen",
    "SharpnessPath",
    "SpectralDensity",
    "TraceEstimate",
    "TrackState",
    "Tracked",
    "METHODS",
    "NORMALIZATIONS",
    "Kernel",
    "effective_rank",
    "empirical_ntk",
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
    "top_eigenpairs",
    "track_sharpness",
]
