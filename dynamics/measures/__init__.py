"""flowax.dynamics.measures: particle measures and their flows.

Measures are `Particles(weights, positions)`; an objective ``F(particles)`` gets its first
variation by autodiff. Wasserstein / Fisher-Rao / WFR flows go through `flowax.dynamics.integrate`;
conic particle GD and mean-field Langevin are `Stepper`s run by `flowax.dynamics.iterate`.
"""

from ...models._particles import Particles
from ._deconvolution import fourier_features, sparse_deconvolution
from ._energies import interaction_energy, potential_energy
from ._flows import (
    RETRACTIONS,
    conic_particle_gd,
    conic_particle_step,
    fisher_rao_flow,
    wasserstein_flow,
    wfr_field,
    wfr_flow,
)
from ._geometry import DOMAINS
from ._langevin import LangevinState, langevin_step, log_annealing, mean_field_langevin
from ._networks import bilevel_output_weights, bilevel_two_layer_risk, two_layer_risk
from ._variation import first_variation

__all__ = [
    "DOMAINS",
    "RETRACTIONS",
    "LangevinState",
    "Particles",
    "bilevel_output_weights",
    "bilevel_two_layer_risk",
    "conic_particle_gd",
    "conic_particle_step",
    "first_variation",
    "fisher_rao_flow",
    "fourier_features",
    "interaction_energy",
    "langevin_step",
    "log_annealing",
    "mean_field_langevin",
    "potential_energy",
    "sparse_deconvolution",
    "two_layer_risk",
    "wasserstein_flow",
    "wfr_field",
    "wfr_flow",
]
