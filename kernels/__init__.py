"""flowax.kernels: empirical and infinite-width NTK, linearized dynamics, curvature.

Nothing is public here yet; see the project's issues.
"""

__all__: list[str] = []
