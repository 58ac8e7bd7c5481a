"""flowax.dynamics: the integrator, the scan loop, gradient flow/descent, sweeps, trajectories."""

from .descent import DescentState, Stepper, descent_step, gradient_descent, iterate
from .gradient import gradient_field, gradient_flow
from .integrate import SOLVERS, fused_lanes, integrate
from .sweep import product_grid, sweep
from .trajectory import STATUS_NAMES, Stats, Trajectory, raise_if_failed

__all__ = [
    "SOLVERS",
    "STATUS_NAMES",
    "DescentState",
    "Stats",
    "Stepper",
    "Trajectory",
    "descent_step",
    "fused_lanes",
    "gradient_descent",
    "gradient_field",
    "gradient_flow",
    "integrate",
    "iterate",
    "product_grid",
    "raise_if_failed",
    "sweep",
]
