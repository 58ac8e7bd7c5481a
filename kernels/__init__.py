"""flowax.kernels: empirical and infinite-width neural tangent kernels, linearized dynamics,
kernel monitors."""

from .empirical import METHODS, empirical_ntk
from .infinite import CLOSED_FORMS, NORMALIZATIONS, Kernel, mlp_kernel
from .linearized import kernel_flow, linearize
from .monitors import effective_rank, kernel_alignment, ntk_drift

__all__ = [
    "CLOSED_FORMS",
    "METHODS",
    "NORMALIZATIONS",
    "Kernel",
    "effective_rank",
    "empirical_ntk",
    "kernel_alignment",
    "kernel_flow",
    "linearize",
    "mlp_kernel",
    "ntk_drift",
]
