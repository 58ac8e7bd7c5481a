"""flowax: the training dynamics of learning systems in JAX.

Subpackages: `flowax.models` (pure models), `flowax.dynamics` (flows, the integrator, sweeps),
`flowax.kernels` (NTK and curvature). Importing flowax compiles nothing.
"""

from . import dynamics, kernels, models
from .dynamics import Trajectory, gradient_descent, gradient_flow, integrate, sweep
from .models import Model

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Trajectory",
    "dynamics",
    "gradient_descent",
    "gradient_flow",
    "integrate",
    "kernels",
    "models",
    "sweep",
]
