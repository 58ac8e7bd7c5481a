"""flowax.dynamics: the integrator, the scan loop, gradient and measure flows, sweeps, results."""

from .barycenters import BarycenterResult, Grid, barycenter_fixed_support
from .descent import DescentState, Stepper, descent_step, gradient_descent, iterate
from .gradient import gradient_field, gradient_flow
from .integrate import SOLVERS, fused_lanes, integrate
from .langevin import LangevinState, langevin_step, log_annealing, mean_field_langevin
from .measure_flows import (
    RETRACTIONS,
    conic_particle_gd,
    conic_particle_step,
    fisher_rao_flow,
    wasserstein_flow,
    wfr_field,
    wfr_flow,
)
from .objectives import (
    bilevel_two_layer_risk,
    fourier_features,
    interaction_energy,
    potential_energy,
    sparse_deconvolution,
    two_layer_risk,
)
from .particles import Particles, first_variation
from .sweep import product_grid, sweep
from .trajectory import STATUS_NAMES, Stats, Trajectory, raise_if_failed
from .transport import (
    TransportResult,
    barycenter_particles,
    barycentric_projection,
    entropic_ot,
    gaussian_barycenter,
    gaussian_entropic_ot,
    sinkhorn_divergence,
)

__all__ = [
    "RETRACTIONS",
    "SOLVERS",
    "STATUS_NAMES",
    "BarycenterResult",
    "DescentState",
    "Grid",
    "LangevinState",
    "Particles",
    "Stats",
    "Stepper",
    "Trajectory",
    "TransportResult",
    "barycenter_fixed_support",
    "barycenter_particles",
    "barycentric_projection",
    "entropic_ot",
    "gaussian_barycenter",
    "gaussian_entropic_ot",
    "sinkhorn_divergence",
    "bilevel_two_layer_risk",
    "conic_particle_gd",
    "conic_particle_step",
    "descent_step",
    "first_variation",
    "fisher_rao_flow",
    "fourier_features",
    "fused_lanes",
    "gradient_descent",
    "gradient_field",
    "gradient_flow",
    "integrate",
    "interaction_energy",
    "iterate",
    "langevin_step",
    "log_annealing",
    "mean_field_langevin",
    "potential_energy",
    "product_grid",
    "raise_if_failed",
    "sparse_deconvolution",
    "sweep",
    "two_layer_risk",
    "wasserstein_flow",
    "wfr_field",
    "wfr_flow",
]
