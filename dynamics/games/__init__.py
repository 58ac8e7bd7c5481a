"""flowax.dynamics.games: two-player zero-sum games.

Pure strategies (any pytrees ``x``, ``y``; ``x`` minimizes ``f(x, y)``, ``y`` maximizes):
the descent-ascent flow (`game_flow`, through `integrate`), its discrete methods
(`descent_ascent_step` / `descent_ascent`: GDA, alternating, extragradient, optimistic,
proximal point, run by `iterate`) and their `local_analysis` (partial curvature).

Mixed strategies (`Particles` on a domain): the conic particle methods for mixed Nash equilibria
and their fixed-support baselines (`mixed_nash_step` / `mixed_nash`), the interacting WFR flow
(`mixed_nash_flow`), the `nikaido_isoda` error, `finite_game` for matrix games and `separable`
payoffs ``phi(x)^T W psi(y)`` evaluated by matrix products. The WFR
geometry and the domains are those of `flowax.dynamics.measures`.
"""

from ._local import LocalAnalysis, local_analysis
from ._mixed import (
    MIXED_METHODS,
    NashState,
    finite_game,
    mixed_nash,
    mixed_nash_flow,
    mixed_nash_step,
    payoff,
    payoff_matrix,
)
from ._nikaido import nikaido_isoda
from ._pure import METHODS, GameState, descent_ascent, descent_ascent_step, game_field, game_flow
from ._separable import SeparablePayoff, separable

__all__ = [
    "METHODS",
    "MIXED_METHODS",
    "GameState",
    "LocalAnalysis",
    "NashState",
    "SeparablePayoff",
    "descent_ascent",
    "descent_ascent_step",
    "finite_game",
    "game_field",
    "game_flow",
    "local_analysis",
    "mixed_nash",
    "mixed_nash_flow",
    "mixed_nash_step",
    "nikaido_isoda",
    "payoff",
    "payoff_matrix",
    "separable",
]
