"""Forward noising processes of denoising diffusion: ``X_t = mu_t X_0 + sigma_t Z``.

Each process is a small NamedTuple with the Ito SDE ``dX = f(t, X) dt + g(t) dB`` (linear drift
``f(t, x) = -h(t) x``) and the Gaussian transition ``X_t | X_0 ~ N(mu_t X_0, sigma_t^2 I)``:

* `OrnsteinUhlenbeck` ``dX = -X dt + sqrt(2) dB``: ``mu_t = e^{-t}``, ``sigma_t^2 = 1 - e^{-2t}``,
  stationary law ``N(0, I)``;
* `VariancePreserving` ``dX = -beta(t)/2 X dt + sqrt(beta(t)) dB`` with the linear schedule
  ``beta(t) = beta_min + (beta_max - beta_min) t / T`` (Song et al. 2021, "Score-based generative
  modeling through stochastic differential equations"): ``mu_t = exp(-B(t)/2)`` with
  ``B(t) = int_0^t beta``, ``sigma_t^2 = 1 - mu_t^2``; OU is VP with ``beta = 2``;
* `VarianceExploding` ``dX = dB``: ``mu_t = 1``, ``sigma_t^2 = t`` (no stationary law; the
  reverse process starts from ``N(0, T I)``).

Conversion: every linear process is a time change and a rescaling of the variance-exploding one.
If ``X^VE_tau = X_0 + sqrt(tau) Z`` then ``X_t = mu_t X^VE_{tau(t)}`` with
``tau(t) = sigma_t^2 / mu_t^2`` (the squared noise-to-signal ratio); scores convert as
``s_t(y) = s^VE_{tau(t)}(y / mu_t) / mu_t``. The empirical optimal score depends on ``(mu_t,
sigma_t)`` only, so everything in `flowax.dynamics.diffusion` takes the process as an argument.

The horizon ``T`` is part of the process: valid times are ``0 < t <= T``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ...models import _checks


class OrnsteinUhlenbeck(NamedTuple):
    """``dX = -X dt + sqrt(2) dB`` on ``[0, T]``: ``mu_t = e^{-t}``, ``sigma_t^2 = 1 - e^{-2t}``."""

    T: float = 5.0

    def mean_scale(self, t):
        return jnp.exp(-t)

    def std(self, t):
        return jnp.sqrt(-jnp.expm1(-2.0 * t))

    def drift(self, t, x):
        return -x

    def diffusion(self, t):
        return jnp.sqrt(2.0) * jnp.ones_like(t)

    def prior_std(self, t):
        """Standard deviation of the law the reverse process starts from at time ``t``: the
        stationary ``N(0, I)`` (``X_t`` of unit-variance data, exactly)."""
        return jnp.ones_like(t)


class VariancePreserving(NamedTuple):
    """``dX = -beta(t)/2 X dt + sqrt(beta(t)) dB`` with ``beta`` linear from ``beta_min`` at 0 to
    ``beta_max`` at ``T`` (Song et al. 2021's VP SDE, ``T = 1``, 0.1 to 20)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = 1.0

    def beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * t / self.T

    def integrated_beta(self, t):
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2 / self.T

    def mean_scale(self, t):
        return jnp.exp(-0.5 * self.integrated_beta(t))

    def std(self, t):
        return jnp.sqrt(-jnp.expm1(-self.integrated_beta(t)))

    def drift(self, t, x):
        return -0.5 * self.beta(t) * x

    def diffusion(self, t):
        return jnp.sqrt(self.beta(t))

    def prior_std(self, t):
        return jnp.ones_like(t)


class VarianceExploding(NamedTuple):
    """``dX = dB`` on ``[0, T]``: ``mu_t = 1``, ``sigma_t^2 = t``."""

    T: float = 100.0

    def mean_scale(self, t):
        return jnp.ones_like(t)

    def std(self, t):
        return jnp.sqrt(t)

    def drift(self, t, x):
        return jnp.zeros_like(x)

    def diffusion(self, t):
        return jnp.ones_like(t)

    def prior_std(self, t):
        """``sigma_t``: the reverse process starts from ``N(0, t I)`` (data of small spread)."""
        return jnp.sqrt(t)


PROCESSES = (OrnsteinUhlenbeck, VariancePreserving, VarianceExploding)
Process = OrnsteinUhlenbeck | VariancePreserving | VarianceExploding


def check_process(process, name: str = "process") -> None:
    """Raises unless ``process`` is one of `PROCESSES` with valid parameters."""
    if not isinstance(process, PROCESSES):
        raise ValueError(
            f"{name}: expected one of {[p.__name__ for p in PROCESSES]} (e.g. "
            f"OrnsteinUhlenbeck(T=5.0)), got {process!r}"
        )
    _checks.check_positive(f"{name}.T", process.T)
    if isinstance(process, VariancePreserving):
        _checks.check_positive(f"{name}.beta_min", process.beta_min)
        _checks.check_positive(f"{name}.beta_max", process.beta_max)


def check_time(name: str, t, process) -> None:
    """Raises unless ``t`` is a real scalar and, when concrete, lies in ``(0, T]``."""
    if isinstance(t, (str, bytes)) or np.ndim(t) != 0:
        raise ValueError(f"{name}: expected a scalar time in (0, {process.T}], got {t!r}")
    value = _checks.concrete(t)
    if value is None:
        return
    ok = value.dtype != object and np.issubdtype(value.dtype, np.number)
    ok = ok and not np.issubdtype(value.dtype, np.complexfloating) and value.dtype != bool
    if not ok or not np.all(np.isfinite(value)) or np.any((value <= 0) | (value > process.T)):
        raise ValueError(
            f"{name}: expected times in (0, T] = (0, {process.T}] of the process, got {t!r}"
        )
