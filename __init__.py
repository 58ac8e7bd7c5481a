"""flowax: the training dynamics of learning systems in JAX.

Subpackages: `flowax.models` (pure models and teachers), `flowax.dynamics` (the integrator, the
scan loop, sweeps, gradient flows; `flowax.dynamics.measures` and `flowax.dynamics.transport`),
`flowax.kernels` (empirical and infinite-width NTK, linearized dynamics, monitors). Importing
flowax compiles nothing.
"""

from importlib import metadata as _metadata

from . import dynamics, kernels, models
from .dynamics import (
    Trajectory,
    gradient_descent,
    gradient_flow,
    integrate,
    iterate,
    sweep,
    use_cpu_cores,
)
from .dynamics.measures import Particles
from .models import Model

try:  # the installed distribution's version (pyproject.toml is the one source of truth)
    __version__ = _metadata.version("flowax")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

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
    "use_cpu_cores",
]
