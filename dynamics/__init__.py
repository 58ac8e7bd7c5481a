"""flowax.dynamics: the engine of every flow, and its fields.

The engine: `integrate` (every continuous flow, on diffrax), `iterate` (the one ``lax.scan``
loop of every discrete method, running a `Stepper`), `sweep` (a grid of runs as one compiled,
sharded program), `Trajectory` / `Stats` (results and failures as data), gradient flow and
descent in parameter space. Fields, as subpackages: `flowax.dynamics.measures` (particle
measures and their flows), `flowax.dynamics.transport` (entropic OT and barycenters) and
`flowax.dynamics.games` (min-max games, pure and mixed) and `flowax.dynamics.diffusion`
(denoising diffusion: forward processes, empirical and smoothed scores, sampling, memorization).
"""

from . import diffusion, games, measures, transport
from ._checkpoint import load_sweep, merge_shards
from ._gradient import DescentState, descent_step, gradient_descent, gradient_field, gradient_flow
from ._integrate import SOLVERS, integrate
from ._iterate import Stepper, iterate
from ._lanes import fused_lanes
from ._multiprocess import use_cpu_cores
from ._progress import Progress
from ._save import SPACINGS
from ._sweep import BATCHING, SweepPreempted, product_grid, sweep
from ._trajectory import STATUS_NAMES, Stats, Trajectory, raise_if_failed

__all__ = [
    "BATCHING",
    "SOLVERS",
    "SPACINGS",
    "STATUS_NAMES",
    "DescentState",
    "Progress",
    "Stats",
    "Stepper",
    "SweepPreempted",
    "Trajectory",
    "descent_step",
    "diffusion",
    "fused_lanes",
    "games",
    "gradient_descent",
    "gradient_field",
    "gradient_flow",
    "integrate",
    "iterate",
    "load_sweep",
    "measures",
    "merge_shards",
    "product_grid",
    "raise_if_failed",
    "sweep",
    "transport",
    "use_cpu_cores",
]
