"""flowax.dynamics.transport: entropic optimal transport through ott-jax, and barycenters.

Convention: cost ``c(x, y) = |x - y|^2 / 2`` and ``T_lam(mu, nu) = min int c dgamma +
lam KL(gamma | mu (x) nu)``; the ``(lam, tau)``-barycenter minimizes
``sum_k w_k T_lam(mu, nu_k) + tau H(mu)`` (Chizat, "Doubly regularized entropic Wasserstein
barycenters"). Every Sinkhorn solve is ott-jax's, except the damped barycenter iteration that
ott does not have; every result carries its solver's convergence.
"""

from ._entropic import TransportResult, barycentric_projection, entropic_ot, sinkhorn_divergence
from ._fixed_support import MODES, BarycenterResult, TensorGrid, barycenter_fixed_support
from ._free_support import barycenter_particles
from ._gaussian import gaussian_barycenter, gaussian_entropic_ot

__all__ = [
    "MODES",
    "BarycenterResult",
    "TensorGrid",
    "TransportResult",
    "barycenter_fixed_support",
    "barycenter_particles",
    "barycentric_projection",
    "entropic_ot",
    "gaussian_barycenter",
    "gaussian_entropic_ot",
    "sinkhorn_divergence",
]
