"""flowax: the training dynamics of learning systems in JAX.

Subpackages: `flowax.models` (pure models and teachers), `flowax.dynamics` (the integrator, the
scan loop, sweeps, gradient flows; `flowax.dynamics.measures` and `flowax.dynamics.transport`),
`flowax.kernels` (empirical and infinite-width NTK, linearized dynamics, monitors). Importing
flowax compiles nothing.
"""

from . import dynamics, kernels, models
from .dynamics import Trajectory, gradient_descent, gradient_flow, integrate, iterate, sweep
from .dynamics.measures import Particles
from .models import Model

__version__ = "0.2.0"

__all__ = [
    "Model",
    "Particles",
    "Trajectory",
    "dynamics",
    "gradient_descent",
    "gradient_flow",
    "integrate",
    "iterate",
    "kernels",
    "models",
    "sweep",
]
