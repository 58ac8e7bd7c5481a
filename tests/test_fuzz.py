"""Fuzz test of the whole public API: every public function of every ``__all__``, called with one
argument mutated at a time, must reject it with a ``ValueError``/``TypeError`` whose message
starts with the argument's name, or report the failure as data (a ``Trajectory`` whose
``stats`` are not ok, a result with ``converged``/``ok`` False). Never a silent result, never an
error from inside a dependency.

Each spec is a valid call (tiny shapes) and, per argument, a *kind* from which the mutations are
generated (`mutations`): positive scalars get 0, -1, NaN, inf, a string, None and a nested list;
ints get 0, negative, fractional, a string, None; arrays a wrong rank, a NaN entry, an empty
array, a string; measures a wrong rank, negative, NaN or mismatched weights, an empty measure,
a bare array; keys an int, a string, a float array; callables a number and a string; options
an unknown string and a number. ``test_fuzz`` runs every (function, argument) pair;
``test_every_public_function_has_a_spec`` keeps the table complete.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flowax import dynamics, kernels, models
from flowax.dynamics import diffusion, games, measures, transport
from flowax.dynamics.measures import Particles

NAN, INF = float("nan"), float("inf")
KEY = jax.random.key(0)

SCALARS = {
    "pos": [0.0, -1.0, NAN, INF, "x", None, [[0.5]]],
    "pos_or_none": [0.0, -1.0, NAN, INF, "x", [[0.5]]],
    "nonneg": [-1.0, NAN, INF, "x", None, [[0.5]]],
    "real": [NAN, INF, "x", None, [[0.5]]],
    "int1": [0, -4, 2.5, "x", None],
    "int1_or_none": [0, -4, 2.5, "x"],
    "int0": [-1, 2.5, "x", None],
    "option": ["nope", 3],
    "option_or_none": ["nope", 3],
    "key": [0, "k", jnp.ones(3)],
    "fn": [3, "f"],
    "fn_or_none": [3, "f"],
    "widths": [[3, 0, 1], [3, -1, 1], [3, 2.5, 1], "x", [3]],
}


def _array_mutations(v, optional=False):
    v = jnp.asarray(v)
    out = [v[..., None], "x"]
    if jnp.issubdtype(v.dtype, jnp.floating):
        out.append(v.at[(0,) * v.ndim].set(jnp.nan))
    if v.ndim:
        out.append(v[:0])
    if not optional:
        out.append(None)
    return out


def _particles_mutations(p):
    w, x = p.weights, p.positions
    return [
        Particles(w, x[..., None]),
        Particles(-w, x),
        Particles(w, x.at[0, 0].set(jnp.nan)),
        Particles(w[:-1], x),
        Particles(w[:0], x[:0]),
        x,
    ]


def mutations(kind, valid):
    if isinstance(kind, str) and kind in SCALARS:
        return SCALARS[kind]
    if kind == "array":
        return _array_mutations(valid)
    if kind == "array_or_none":
        return _array_mutations(valid, optional=True)
    if kind == "particles":
        return _particles_mutations(valid)
    if kind == "measures":  # a list of Particles
        return [[m] for m in _particles_mutations(valid[0])] + [[], "x"]
    if kind == "tree":  # a pytree that the function's callable is applied to
        return ["x", None, (valid, valid)]
    if kind == "params":  # any pytree of arrays (its shape is the callable's business)
        v = jnp.asarray(valid)
        return ["x", None, v.at[(0,) * v.ndim].set(jnp.nan), v[:0]]
    if kind == "array_any_rank":
        return [
            m for m in _array_mutations(valid) if np.ndim(m) == 0 or np.ndim(m) <= np.ndim(valid)
        ]
    if isinstance(kind, list):
        return kind
    raise AssertionError(kind)


_CKPT = f"{__import__('tempfile').gettempdir()}/flowax-fuzz-{__import__('os').getpid()}"


def _with_checkpoint(fn):
    """``fn`` run after a finished checkpointed sweep exists at ``_CKPT`` (made on first use)."""

    def call(*args, **kwargs):
        if not __import__("os").path.isdir(_CKPT):
            dynamics.sweep(lambda g: 2 * g, jnp.ones(3), checkpoint=_CKPT, progress=False)
        return fn(*args, **kwargs)

    return call


# Public functions that take no fuzzable input: what they do is process-wide, before JAX starts.
UNFUZZED = {"dynamics.use_cpu_cores": "sets JAX's CPU device count; tests/dynamics/test_cores.py"}


@dataclass
class Spec:
    fn: Any
    args: dict  # name -> (valid value, kind)
    pos: tuple = ()
    use: Any = None  # exercise a returned callable / model
    names: dict = field(default_factory=dict)  # arg -> other acceptable names in the message

    def run(self, a):
        out = self.fn(
            *[a[n] for n in self.pos], **{k: v for k, v in a.items() if k not in self.pos}
        )
        return self.use(out) if self.use is not None else out


def flagged(r) -> bool:
    """Whether a returned result reports a failure."""
    if isinstance(r, dynamics.Trajectory):
        return not bool(np.all(r.stats.ok))
    if isinstance(r, dynamics.Stats):
        return not bool(np.all(r.ok))
    for attr in ("converged", "ok"):
        if hasattr(r, attr) and not callable(getattr(r, attr)):
            return not bool(np.all(getattr(r, attr)))
    if isinstance(r, (tuple, list)) and not hasattr(r, "_fields"):
        return any(flagged(x) for x in r)
    return False


def outcome(spec: Spec, arg: str, bad) -> str:
    a = {k: v for k, (v, _) in spec.args.items()}
    a[arg] = bad
    try:
        r = jax.block_until_ready(spec.run(a))
    except (ValueError, TypeError) as e:
        msg = str(e)
        for n in (arg, *spec.names.get(arg, ())):
            if re.match(rf"^{re.escape(n)}(\[|:| |\.|\()", msg):
                return "named"
        return f"unnamed {type(e).__name__}: {msg[:160]!r}"
    except Exception as e:  # noqa: BLE001
        return f"deep {type(e).__name__}: {str(e)[:160]!r}"
    return "data" if flagged(r) else "silent"


# ----------------------------------------------------------------------------- the table

P = Particles(jnp.full(4, 0.25), jax.random.normal(jax.random.key(1), (4, 2)))
P3 = Particles(jnp.full(4, 0.25), jax.random.normal(jax.random.key(2), (4, 3)))  # neurons
NU = Particles(jnp.full(5, 0.2), jax.random.normal(jax.random.key(3), (5, 2)) + 0.5)
X = jax.random.normal(jax.random.key(4), (6, 2))
Y = jnp.sin(X[:, 0])
NET = models.mlp([3, 4, 1], activation="tanh")
NET_P = NET.init(KEY)
XN = jax.random.normal(jax.random.key(5), (3, 3))
ENERGY = measures.potential_energy(lambda x: 0.5 * x @ x)


class FlaxNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.tanh(nn.Dense(3)(x)))


def quad(p):
    return 0.5 * jnp.sum(p**2)


def field_(t, y, a):
    return -y


STEPPER = dynamics.descent_step(quad, lr=0.1)
TRAJ = dynamics.integrate(field_, jnp.ones(1), t1=0.1, n_save=2)
GRID = transport.TensorGrid((jnp.linspace(-1.0, 1.0, 4),) * 2)
HIST = jnp.full((1, 16), 1.0 / 16)

SPECS: dict[str, Spec] = {
    # models
    "models.mlp": Spec(
        models.mlp,
        {
            "widths": ([3, 4, 1], "widths"),
            "activation": ("tanh", "option"),
            "parametrization": ("ntk", "option"),
            "weight_std": (1.0, "pos"),
            "bias_std": (0.1, "nonneg"),
        },
        pos=("widths",),
        use=lambda m: m.apply(m.init(KEY), jnp.ones((2, 3))),
    ),
    "models.deep_linear": Spec(
        models.deep_linear,
        {
            "widths": ([3, 4, 1], "widths"),
            "parametrization": ("standard", "option"),
            "weight_std": (1.0, "pos"),
        },
        pos=("widths",),
        use=lambda m: m.apply(m.init(KEY), jnp.ones((2, 3))),
    ),
    "models.two_layer": Spec(
        models.two_layer,
        {
            "width": (4, "int1"),
            "d_in": (3, "int1"),
            "d_out": (1, "int1"),
            "activation": ("relu", "option"),
            "parametrization": ("mean_field", "option"),
            "weight_std": (1.0, "pos"),
            "bias_std": (0.0, "nonneg"),
        },
        pos=("width",),
        use=lambda m: m.apply(m.init(KEY), jnp.ones((2, 3))),
    ),
    "models.end_to_end": Spec(
        models.end_to_end,
        {
            "model": (models.deep_linear([3, 4, 2]), [3, "x"]),
            "params": (models.deep_linear([3, 4, 2]).init(KEY), "tree"),
            "d_in": (3, "int1"),
        },
        pos=("model", "params", "d_in"),
        names={"params": ("model",)},
    ),
    "models.get_activation": Spec(
        models.get_activation, {"activation": ("tanh", "option")}, pos=("activation",)
    ),
    "models.linear_teacher": Spec(
        models.linear_teacher,
        {
            "key": (KEY, "key"),
            "d_in": (3, "int1"),
            "d_out": (2, "int1"),
            "n": (5, "int1"),
            "singular_values": ((2.0, 1.0), [(-1.0, 1.0), (NAN, 1.0), "x", ()]),
            "noise_std": (0.1, "nonneg"),
        },
        pos=("key",),
    ),
    "models.multi_index_teacher": Spec(
        models.multi_index_teacher,
        {
            "key": (KEY, "key"),
            "d_in": (3, "int1"),
            "n": (5, "int1"),
            "k": (2, "int1"),
            "link": ("relu", "option"),
            "noise_std": (0.1, "nonneg"),
        },
        pos=("key",),
    ),
    "models.from_flax": Spec(
        models.from_flax,
        {
            "module": (FlaxNet(), [3, "x"]),
            "x_example": (jnp.ones((1, 3)), ["x", None]),
            "features": (None, [3, [3], []]),
        },
        pos=("module", "x_example"),
    ),
    "models.two_layer_to_particles": Spec(
        models.two_layer_to_particles,
        {
            "params": (models.two_layer(4, d_in=3).init(KEY), ["x", None, (1.0,)]),
            "weight_std": (1.0, "pos"),
        },
        pos=("params",),
    ),
    "models.particles_to_two_layer": Spec(
        models.particles_to_two_layer,
        {"particles": (P3, "particles"), "weight_std": (1.0, "pos")},
        pos=("particles",),
    ),
    # dynamics (engine)
    "dynamics.integrate": Spec(
        dynamics.integrate,
        {
            "field": (field_, "fn"),
            "y0": (jnp.ones(2), "params"),
            "t1": (1.0, "pos"),
            "t0": (0.0, "real"),
            "n_save": (3, "int1"),
            "spacing": ("linear", "option"),
            "solver": ("tsit5", "option_or_none"),
            "rtol": (1e-6, "pos"),
            "atol": (1e-8, "pos"),
            "max_steps": (100, "int1"),
            "steady_state": (None, "pos_or_none"),
            "stop_if": (None, "fn_or_none"),
        },
        pos=("field", "y0"),
    ),
    "dynamics.gradient_flow": Spec(
        dynamics.gradient_flow,
        {
            "loss": (quad, "fn"),
            "params": (jnp.ones(2), "params"),
            "t1": (1.0, "pos"),
            "n_save": (3, "int1"),
            "steady_state": (1e-3, "pos_or_none"),
        },
        pos=("loss", "params"),
    ),
    "dynamics.gradient_field": Spec(
        dynamics.gradient_field,
        {"loss": (quad, "fn")},
        pos=("loss",),
        use=lambda f: f(0.0, jnp.ones(2), None),
    ),
    "dynamics.descent_step": Spec(
        dynamics.descent_step,
        {"loss": (quad, "fn"), "lr": (0.1, "pos")},
        pos=("loss",),
        use=lambda s: s.step(s.init(jnp.ones(2))),
    ),
    "dynamics.gradient_descent": Spec(
        dynamics.gradient_descent,
        {
            "loss": (quad, "fn"),
            "params": (jnp.ones(2), "params"),
            "steps": (3, "int1"),
            "lr": (0.1, "pos_or_none"),
            "n_save": (2, "int1"),
            "spacing": ("linear", "option"),
        },
        pos=("loss", "params"),
    ),
    "dynamics.iterate": Spec(
        dynamics.iterate,
        {
            "stepper": (STEPPER, [3, quad]),
            "x0": (jnp.ones(2), "params"),
            "steps": (3, "int1"),
            "n_save": (2, "int1"),
            "spacing": ("linear", "option"),
            "dt": (1.0, "pos"),
            "key": (KEY, "key"),
        },
        pos=("stepper", "x0"),
        names={"x0": ("loss",)},
    ),
    "dynamics.sweep": Spec(
        dynamics.sweep,
        {
            "fn": (lambda g: 2 * g, "fn"),
            "grid": (jnp.ones(3), ["x", None, jnp.float64(1.0), jnp.ones(0)]),
            "chunk_size": (2, "int1_or_none"),
            "devices": (None, ["cpu", 3]),
            "progress": (False, []),
            "batching": ("auto", "option"),
            "shard": (None, [(3, 3), (0, 0), (-1, 2), (0, 4), "x", (0.5, 1)]),
            "checkpoint": (None, [3, "/proc/version"]),
            "keep_in_memory": (True, ["x", None, 2]),
            "fingerprint": (None, [3]),
        },
        pos=("fn", "grid"),
    ),
    "dynamics.load_sweep": Spec(
        _with_checkpoint(dynamics.load_sweep),
        {"path": (_CKPT, [3, None, "/proc/version"]), "chunks": (None, [[5], "x", [0.5]])},
        pos=("path",),
    ),
    "dynamics.merge_shards": Spec(
        _with_checkpoint(dynamics.merge_shards),
        {"paths": ([_CKPT], [[], "x", [3], None, 3, ["/proc/version"]])},
        pos=("paths",),
    ),
    "dynamics.product_grid": Spec(
        lambda a: dynamics.product_grid(a=a),
        {"a": (np.arange(3.0), [[[1.0, 2.0]], "x", [], None])},
        pos=("a",),
    ),
    "dynamics.raise_if_failed": Spec(
        dynamics.raise_if_failed, {"result": (TRAJ, [None, 3.0, "x"])}, pos=("result",)
    ),
    "dynamics.fused_lanes": Spec(
        dynamics.fused_lanes,
        {"enabled": (True, ["x", None, 2])},
        pos=("enabled",),
        use=lambda c: c.__enter__(),
    ),
    # measures
    "measures.first_variation": Spec(
        measures.first_variation,
        {"objective": (ENERGY, "fn"), "particles": (P, "particles")},
        pos=("objective", "particles"),
    ),
    "measures.wfr_field": Spec(
        measures.wfr_field,
        {"objective": (ENERGY, "fn"), "alpha": (1.0, "nonneg"), "beta": (1.0, "nonneg")},
        pos=("objective",),
        use=lambda f: f(0.0, P, None),
    ),
    "measures.wfr_flow": Spec(
        measures.wfr_flow,
        {
            "objective": (ENERGY, "fn"),
            "particles": (P, "particles"),
            "t1": (0.5, "pos"),
            "alpha": (1.0, "nonneg"),
            "beta": (1.0, "nonneg"),
            "n_save": (2, "int1"),
        },
        pos=("objective", "particles"),
    ),
    "measures.wasserstein_flow": Spec(
        measures.wasserstein_flow,
        {
            "objective": (ENERGY, "fn"),
            "particles": (P, "particles"),
            "t1": (0.5, "pos"),
            "alpha": (1.0, "pos"),
            "n_save": (2, "int1"),
        },
        pos=("objective", "particles"),
    ),
    "measures.fisher_rao_flow": Spec(
        measures.fisher_rao_flow,
        {
            "objective": (ENERGY, "fn"),
            "particles": (P, "particles"),
            "t1": (0.5, "pos"),
            "beta": (1.0, "pos"),
            "n_save": (2, "int1"),
        },
        pos=("objective", "particles"),
    ),
    "measures.conic_particle_step": Spec(
        measures.conic_particle_step,
        {
            "objective": (ENERGY, "fn"),
            "lr": (0.1, "pos"),
            "alpha": (1.0, "nonneg"),
            "beta": (1.0, "nonneg"),
            "retraction": ("mirror", "option"),
        },
        pos=("objective",),
        use=lambda s: s.step(s.init(P)),
    ),
    "measures.conic_particle_gd": Spec(
        measures.conic_particle_gd,
        {
            "objective": (ENERGY, "fn"),
            "particles": (P, "particles"),
            "lr": (0.1, "pos"),
            "steps": (2, "int1"),
            "n_save": (2, "int1"),
        },
        pos=("objective", "particles"),
    ),
    "measures.langevin_step": Spec(
        measures.langevin_step,
        {"objective": (ENERGY, "fn"), "lr": (0.1, "pos"), "temperature": (0.1, "nonneg")},
        pos=("objective",),
        use=lambda s: s.step(s.init(P, key=KEY)),
    ),
    "measures.mean_field_langevin": Spec(
        measures.mean_field_langevin,
        {
            "objective": (ENERGY, "fn"),
            "particles": (P, "particles"),
            "temperature": (0.1, "nonneg"),
            "lr": (0.1, "pos"),
            "steps": (2, "int1"),
            "key": (KEY, "key"),
            "n_save": (2, "int1"),
        },
        pos=("objective", "particles"),
    ),
    "measures.log_annealing": Spec(
        measures.log_annealing,
        {"temperature0": (1.0, "pos")},
        pos=("temperature0",),
        use=lambda f: f(jnp.asarray(1.0)),
    ),
    "measures.potential_energy": Spec(
        measures.potential_energy, {"v": (lambda x: x @ x, "fn")}, pos=("v",), use=lambda e: e(P)
    ),
    "measures.interaction_energy": Spec(
        measures.interaction_energy,
        {"kernel": (lambda a, b: jnp.sum(a * b), "fn"), "v": (None, "fn_or_none")},
        pos=("kernel",),
        use=lambda e: e(P),
    ),
    "measures.two_layer_risk": Spec(
        measures.two_layer_risk,
        {
            "x": (X, "array"),
            "y": (Y, "array"),
            "activation": ("tanh", "option"),
            "reg": (0.01, "nonneg"),
            "chunk_size": (2, "int1_or_none"),
        },
        pos=("x", "y"),
        use=lambda r: r(P3),
    ),
    "measures.bilevel_two_layer_risk": Spec(
        measures.bilevel_two_layer_risk,
        {
            "x": (X, "array"),
            "y": (Y, "array"),
            "activation": ("tanh", "option"),
            "reg": (0.01, "pos"),
        },
        pos=("x", "y"),
        use=lambda r: r(P),
    ),
    "measures.bilevel_output_weights": Spec(
        measures.bilevel_output_weights,
        {
            "x": (X, "array"),
            "y": (Y, "array"),
            "particles": (P, "particles"),
            "activation": ("tanh", "option"),
            "reg": (0.01, "pos"),
        },
        pos=("x", "y", "particles"),
    ),
    "measures.fourier_features": Spec(
        measures.fourier_features,
        {"x": (jnp.array([[0.1], [0.4]]), "array"), "cutoff": (2, "int1")},
        pos=("x", "cutoff"),
    ),
    "measures.sparse_deconvolution": Spec(
        measures.sparse_deconvolution,
        {"measurements": (jnp.ones(5), "array"), "cutoff": (2, "int1"), "reg": (0.1, "nonneg")},
        pos=("measurements",),
        use=lambda o: o(Particles(jnp.full(3, 1 / 3), jnp.array([[0.1], [0.5], [0.7]]))),
    ),
    # transport
    "transport.entropic_ot": Spec(
        transport.entropic_ot,
        {
            "mu": (P, "particles"),
            "nu": (NU, "particles"),
            "lam": (0.5, "pos"),
            "threshold": (1e-6, "nonneg"),
            "max_iterations": (200, "int1"),
        },
        pos=("mu", "nu"),
    ),
    "transport.sinkhorn_divergence": Spec(
        transport.sinkhorn_divergence,
        {
            "mu": (P, "particles"),
            "nu": (NU, "particles"),
            "lam": (0.5, "pos"),
            "threshold": (1e-6, "nonneg"),
            "max_iterations": (200, "int1"),
        },
        pos=("mu", "nu"),
    ),
    "transport.barycentric_projection": Spec(
        transport.barycentric_projection,
        {"mu": (P, "particles"), "nu": (NU, "particles"), "lam": (0.5, "pos")},
        pos=("mu", "nu"),
    ),
    "transport.barycenter_fixed_support": Spec(
        transport.barycenter_fixed_support,
        {
            "support": (GRID, ["x", None, jnp.ones(3)]),
            "measures": (HIST, "array"),
            "weights": (jnp.ones(1), "array"),
            "lam": (0.5, "pos"),
            "tau": (0.5, "pos"),
            "threshold": (1e-6, "nonneg"),
            "max_iterations": (50, "int1"),
            "mode": ("log", "option"),
        },
        pos=("support", "measures", "weights"),
    ),
    "transport.barycenter_particles": Spec(
        transport.barycenter_particles,
        {
            "measures": ([NU], "measures"),
            "weights": (jnp.ones(1), "array"),
            "lam": (0.5, "pos"),
            "tau": (0.1, "nonneg"),
            "n_particles": (3, "int1"),
            "key": (KEY, "key"),
            "lr": (0.2, "pos"),
            "steps": (2, "int1"),
            "threshold": (1e-6, "nonneg"),
        },
        pos=("measures", "weights"),
    ),
    "transport.gaussian_entropic_ot": Spec(
        transport.gaussian_entropic_ot,
        {
            "mean_a": (jnp.zeros(2), "array"),
            "cov_a": (jnp.eye(2), "array"),
            "mean_b": (jnp.ones(2), "array"),
            "cov_b": (2 * jnp.eye(2), "array"),
            "lam": (0.3, "pos"),
        },
        pos=("mean_a", "cov_a", "mean_b", "cov_b"),
    ),
    "transport.gaussian_barycenter": Spec(
        transport.gaussian_barycenter,
        {
            "means": (jnp.zeros((2, 1)), "array"),
            "variances": (jnp.array([1.0, 2.0]), "array"),
            "weights": (jnp.array([0.5, 0.5]), "array"),
            "lam": (0.2, "nonneg"),
            "tau": (0.1, "pos"),
            "iterations": (50, "int1"),
        },
        pos=("means", "variances", "weights"),
    ),
    # kernels
    "kernels.empirical_ntk": Spec(
        kernels.empirical_ntk,
        {
            "apply": (NET.apply, "fn"),
            "params": (NET_P, "tree"),
            "x1": (XN, "array"),
            "x2": (None, [jnp.ones((2, 5)), "x"]),
            "method": ("auto", "option"),
            "batch_size": (None, [0, -1, 1.5, "x"]),
        },
        pos=("apply", "params", "x1", "x2"),
        names={"params": ("apply",), "x1": ("apply",)},
    ),
    "kernels.mlp_kernel": Spec(
        kernels.mlp_kernel,
        {
            "depth": (2, "int1"),
            "activation": ("relu", "option"),
            "weight_std": (1.0, "pos"),
            "bias_std": (0.1, "nonneg"),
            "normalization": (None, "option_or_none"),
            "quadrature_degree": (10, "int1"),
        },
        pos=("depth",),
        use=lambda k: k(XN),
    ),
    "kernels.linearize": Spec(
        kernels.linearize,
        {"apply": (NET.apply, "fn"), "params0": (NET_P, "tree")},
        pos=("apply", "params0"),
        use=lambda lin: lin(NET_P, XN),
        names={"params0": ("apply", "params")},
    ),
    "kernels.kernel_flow": Spec(
        kernels.kernel_flow,
        {
            "ntk_train": (jnp.array([[2.0, 0.5], [0.5, 1.0]]), "array"),
            "y_train": (jnp.ones(2), "array_any_rank"),
        },
        pos=("ntk_train", "y_train"),
        use=lambda pred: pred(jnp.array([0.0, 1.0]), jnp.zeros(2)),
    ),
    "kernels.ntk_drift": Spec(
        kernels.ntk_drift,
        {"apply": (NET.apply, "fn"), "params0": (NET_P, "tree"), "method": ("auto", "option")},
        pos=("apply", "params0"),
        use=lambda d: d(NET_P, XN),
        names={"params0": ("apply",)},
    ),
    "kernels.kernel_alignment": Spec(
        kernels.kernel_alignment,
        {
            "kernel": (jnp.eye(3) + 0.1, "array"),
            "y": (jnp.array([1.0, -1.0, 0.5]), "array_any_rank"),
        },
        pos=("kernel", "y"),
    ),
    "kernels.effective_rank": Spec(
        kernels.effective_rank,
        {"kernel": (jnp.eye(3) + 0.1, "array"), "kind": ("entropy", "option")},
        pos=("kernel",),
    ),
    "kernels.hvp": Spec(
        kernels.hvp,
        {"loss": (quad, "fn"), "params": (jnp.ones(3), "params"), "v": (jnp.ones(3), "array")},
        pos=("loss", "params", "v"),
    ),
    "kernels.gnvp": Spec(
        kernels.gnvp,
        {
            "apply": (NET.apply, "fn"),
            "params": (NET_P, "tree"),
            "x": (XN, "array"),
            "v": (NET_P, "tree"),
            "loss": ("mse", "option"),
        },
        pos=("apply", "params", "x", "v"),
        names={"params": ("apply", "v"), "x": ("apply",)},
    ),
    "kernels.top_eigenpairs": Spec(
        kernels.top_eigenpairs,
        {
            "loss": (quad, "fn"),
            "params": (jnp.arange(1.0, 5.0), "params"),
            "k": (1, "int1"),
            "num_iters": (4, "int1"),
            "key": (KEY, "key"),
            "which": ("largest", "option"),
            "tol": (1e-3, "pos"),
        },
        pos=("loss", "params"),
    ),
    "kernels.sharpness": Spec(
        kernels.sharpness,
        {
            "loss": (quad, "fn"),
            "params": (jnp.arange(1.0, 5.0), "params"),
            "num_iters": (4, "int1"),
            "key": (KEY, "key"),
        },
        pos=("loss", "params"),
    ),
    "kernels.spectral_density": Spec(
        kernels.spectral_density,
        {
            "loss": (quad, "fn"),
            "params": (jnp.arange(1.0, 5.0), "params"),
            "key": (KEY, "key"),
            "num_probes": (2, "int1"),
            "num_iters": (3, "int1"),
        },
        pos=("loss", "params"),
    ),
    "kernels.hessian_trace": Spec(
        kernels.hessian_trace,
        {
            "loss": (quad, "fn"),
            "params": (jnp.arange(1.0, 5.0), "params"),
            "key": (KEY, "key"),
            "num_probes": (3, "int1"),
            "method": ("hutchinson", "option"),
        },
        pos=("loss", "params"),
    ),
    "kernels.track_sharpness": Spec(
        kernels.track_sharpness,
        {
            "stepper": (STEPPER, [3, quad]),
            "loss": (quad, "fn"),
            "key": (KEY, "key"),
            "every": (1, [0, -4, 2.5, "x", None, [3, 2], [], [0.5]]),
            "num_iters": (2, "int1"),
            "cold_iters": (3, "int1"),
            "tol": (1e-3, "pos"),
        },
        pos=("stepper", "loss"),
        use=lambda s: s.step(s.init(jnp.arange(1.0, 4.0))),
    ),
    "kernels.sharpness_path": Spec(
        kernels.sharpness_path,
        {
            "loss": (quad, "fn"),
            "path": (jnp.ones((2, 3)), "params"),
            "key": (KEY, "key"),
            "num_iters": (2, "int1"),
            "cold_iters": (3, "int1"),
            "tol": (1e-3, "pos"),
        },
        pos=("loss", "path"),
    ),
}


# games
def _g(x, y):
    return 0.5 * x @ x + x @ y


def _gt(x, y):
    return jnp.cos(2 * jnp.pi * (x[0] - y[0])) + 0.3 * jnp.sin(2 * jnp.pi * x[0])


MU_T = Particles(jnp.full(3, 1 / 3), jnp.array([[0.1], [0.5], [0.8]]))
NU_T = Particles(jnp.full(2, 0.5), jnp.array([[0.2], [0.7]]))
CAND = jnp.linspace(0.0, 1.0, 8, endpoint=False)[:, None]
_PURE = {"f": (_g, "fn"), "x0": (jnp.ones(2), "params"), "y0": (jnp.ones(2), "params")}
_MIXED = {"f": (_gt, "fn"), "mu0": (MU_T, "particles"), "nu0": (NU_T, "particles")}
SPECS.update(
    {
        "games.game_field": Spec(
            games.game_field,
            {"f": (_g, "fn"), "ratio": (1.0, "pos")},
            pos=("f",),
            use=lambda fld: fld(0.0, (jnp.ones(2), jnp.ones(2)), None),
        ),
        "games.game_flow": Spec(
            games.game_flow,
            {**_PURE, "t1": (1.0, "pos"), "ratio": (1.0, "pos"), "n_save": (2, "int1")},
            pos=("f", "x0", "y0"),
            names={"x0": ("f",), "y0": ("f",)},
        ),
        "games.descent_ascent_step": Spec(
            games.descent_ascent_step,
            {
                "f": (_g, "fn"),
                "eta": (0.1, "pos"),
                "method": ("proximal", "option"),
                "ratio": (1.0, "pos"),
                "prox_tol": (None, "pos_or_none"),
                "prox_iterations": (20, "int1"),
            },
            pos=("f",),
            use=lambda s: s.step(s.init((jnp.ones(2), jnp.ones(2)))),
        ),
        "games.descent_ascent": Spec(
            games.descent_ascent,
            {
                **_PURE,
                "eta": (0.1, "pos"),
                "steps": (3, "int1"),
                "method": ("extragradient", "option"),
                "ratio": (1.0, "pos"),
                "n_save": (2, "int1"),
            },
            pos=("f", "x0", "y0"),
            names={"x0": ("f",), "y0": ("f",)},
        ),
        "games.local_analysis": Spec(
            games.local_analysis,
            {
                "f": (_g, "fn"),
                "x_star": (jnp.zeros(2), "params"),
                "y_star": (jnp.zeros(2), "params"),
                "eta": (0.1, "pos_or_none"),
                "ratio": (1.0, "pos"),
            },
            pos=("f", "x_star", "y_star"),
            names={"x_star": ("f",), "y_star": ("f",)},
        ),
        "games.mixed_nash_step": Spec(
            games.mixed_nash_step,
            {
                "f": (_gt, "fn"),
                "method": ("cp_pp", "option"),
                "eta_weights": (0.1, "pos"),
                "eta_positions": (0.01, "nonneg"),
                "domain": ("torus", "option"),
                "pp_tol": (None, "pos_or_none"),
                "pp_iterations": (20, "int1"),
            },
            pos=("f",),
            use=lambda s: s.step(s.init((MU_T, NU_T))),
        ),
        "games.mixed_nash": Spec(
            games.mixed_nash,
            {
                **_MIXED,
                "method": ("cp_mp", "option"),
                "steps": (3, "int1"),
                "eta_weights": (0.1, "pos"),
                "eta_positions": (0.01, "nonneg"),
                "domain": ("torus", "option"),
                "n_save": (2, "int1"),
            },
            pos=("f", "mu0", "nu0"),
        ),
        "games.mixed_nash_flow": Spec(
            games.mixed_nash_flow,
            {
                **_MIXED,
                "t1": (0.5, "pos"),
                "alpha": (1.0, "nonneg"),
                "beta": (1.0, "nonneg"),
                "domain": ("torus", "option"),
                "n_save": (2, "int1"),
            },
            pos=("f", "mu0", "nu0"),
        ),
        "games.nikaido_isoda": Spec(
            games.nikaido_isoda,
            {
                "f": (_gt, "fn"),
                "mu": (MU_T, "particles"),
                "nu": (NU_T, "particles"),
                "x_candidates": (CAND, "array"),
                "y_candidates": (CAND, "array"),
                "steps": (2, "int0"),
                "lr": (0.01, "pos"),
                "domain": ("torus", "option"),
            },
            pos=("f", "mu", "nu"),
        ),
        "games.payoff": Spec(
            games.payoff,
            {"f": (_gt, "fn"), "mu": (MU_T, "particles"), "nu": (NU_T, "particles")},
            pos=("f", "mu", "nu"),
            names={"mu": ("f",), "nu": ("f",)},
        ),
        "games.payoff_matrix": Spec(
            games.payoff_matrix,
            {"f": (_gt, "fn"), "xs": (MU_T.positions, "array"), "ys": (CAND, "array")},
            pos=("f", "xs", "ys"),
            names={"xs": ("f",), "ys": ("f",)},
        ),
        "games.separable": Spec(
            games.separable,
            {
                "phi": (lambda x: jnp.stack([jnp.cos(x[0]), jnp.sin(x[0])]), "fn"),
                "psi": (lambda y: jnp.stack([jnp.cos(y[0]), jnp.sin(y[0])]), "fn"),
                "matrix": (jnp.eye(2), "array"),
            },
            pos=("phi", "psi", "matrix"),
        ),
        "games.finite_game": Spec(
            games.finite_game,
            {"matrix": (jnp.array([[0.0, 1.0], [-1.0, 0.0]]), "array")},
            pos=("matrix",),
        ),
    }
)

# A bad argument that the user's callable is applied to may be reported by naming the callable
# (``objective: calling objective(particles) on arguments of shapes ... failed ...``).
APPLIED_TO = {"particles": "objective", "params": ("loss", "apply"), "y0": "field", "x0": "loss"}
for _spec in SPECS.values():
    for _arg, _fns in APPLIED_TO.items():
        for _fn in (_fns,) if isinstance(_fns, str) else _fns:
            if _arg in _spec.args and _fn in _spec.args:
                _spec.names[_arg] = (*_spec.names.get(_arg, ()), _fn)

# diffusion
_OU = diffusion.OrnsteinUhlenbeck(T=2.0)
_DD = jnp.array([[0.0, 1.0], [1.0, 0.5], [-1.0, 0.2]])
_PROC = ["ou", None, diffusion.OrnsteinUhlenbeck(T=-1.0), 3.0]


def _score_use(s):
    return s(0.5, _DD[:2])


SPECS.update(
    {
        "diffusion.empirical_score": Spec(
            diffusion.empirical_score,
            {
                "data": (_DD, "array"),
                "process": (_OU, _PROC),
                "weights": (jnp.array([1.0, 0.0, 2.0]), "array_or_none"),
                "chunk_size": (2, "int1"),
            },
            pos=("data", "process"),
            use=_score_use,
            names={"data": ("y",)},  # data of another event shape: the queries no longer fit
        ),
        "diffusion.kernel_smoothed_score": Spec(
            diffusion.kernel_smoothed_score,
            {
                "data": (_DD, "array"),
                "process": (_OU, _PROC),
                "bandwidth": (0.3, "pos"),
                "method": ("gauss_hermite", "option"),
                "order": (3, "int1"),
            },
            pos=("data", "process", "bandwidth"),
            use=_score_use,
            names={"data": ("y", "order")},
        ),
        "diffusion.smooth_score": Spec(
            diffusion.smooth_score,
            {
                "score": (lambda t, y: -y, "fn"),
                "bandwidth": (0.3, "pos"),
                "event_shape": ((2,), ["x", None]),
                "method": ("monte_carlo", "option"),
                "n_samples": (8, "int1"),
                "key": (KEY, "key"),
            },
            pos=("score", "bandwidth"),
            use=_score_use,
            names={"event_shape": ("order",)},
        ),
        "diffusion.gaussian_score": Spec(
            diffusion.gaussian_score,
            {
                "mean": (jnp.zeros(2), "array"),
                "cov": (jnp.eye(2), "array"),
                "process": (_OU, _PROC),
            },
            pos=("mean", "cov", "process"),
            use=_score_use,
        ),
        "diffusion.gaussian_mixture_score": Spec(
            diffusion.gaussian_mixture_score,
            {
                "weights": (jnp.array([0.5, 0.5]), "array"),
                "means": (jnp.zeros((2, 2)), "array"),
                "covs": (jnp.stack([jnp.eye(2)] * 2), "array"),
                "process": (_OU, _PROC),
            },
            pos=("weights", "means", "covs", "process"),
            use=_score_use,
        ),
        "diffusion.sample": Spec(
            diffusion.sample,
            {
                "score": (lambda t, y: -y, "fn"),
                "process": (_OU, _PROC),
                "key": (KEY, "key"),
                "n": (3, "int1"),
                "event_shape": ((2,), ["x", None]),
                "t_min": (0.1, "pos"),
                "method": ("sde", "option"),
                "steps": (4, "int1"),
            },
            pos=("score", "process"),
        ),
        "diffusion.dsm_loss": Spec(
            diffusion.dsm_loss,
            {
                "score_model": (lambda p, y: p * y, "fn"),
                "data": (_DD, "array_any_rank"),  # any event shape is valid for p * y
                "process": (_OU, _PROC),
                "t": (0.5, "pos"),
                "weighting": ("none", "option"),
                "batch_size": (2, "int1_or_none"),
                "n_noise": (2, "int1"),
            },
            pos=("score_model", "data", "process"),
            use=lambda loss: loss(jnp.array(0.5), KEY),
        ),
        "diffusion.excess_risk": Spec(
            diffusion.excess_risk,
            {
                "score": (lambda t, y: -y, "fn"),
                "data": (_DD, "array_any_rank"),  # any event shape is valid for -y
                "process": (_OU, _PROC),
                "t": (0.5, "pos"),
                "key": (KEY, "key"),
                "n_noise": (4, "int1"),
            },
            pos=("score", "data", "process", "t"),
        ),
        "diffusion.nearest_neighbours": Spec(
            diffusion.nearest_neighbours,
            {
                "samples": (_DD[:2] + 0.1, "array"),
                "data": (_DD, "array"),
                "chunk_size": (2, "int1"),
            },
            pos=("samples", "data"),
            names={"data": ("samples",)},
        ),
        "diffusion.memorized_fraction": Spec(
            diffusion.memorized_fraction,
            {"samples": (_DD[:2] + 0.1, "array"), "data": (_DD, "array"), "ratio": (0.3, "pos")},
            pos=("samples", "data"),
            names={"data": ("samples",)},
        ),
        "diffusion.mmd": Spec(
            diffusion.mmd,
            {"x": (_DD, "array"), "y": (_DD + 0.5, "array"), "bandwidth": (1.0, "pos")},
            pos=("x", "y"),
            names={"x": ("y",)},
        ),
    }
)

RES = models.resnet(4, 3, d_in=3)
RES_P = RES.init(KEY)
_XB = (jnp.ones((2, 3)), jnp.zeros((2, 1)))
_NOT_RES = ["x", None, {"w": 1.0}]

SPECS.update(
    {
        "models.resnet": Spec(
            models.resnet,
            {
                "width": (4, "int1"),
                "depth": (3, "int1"),
                "d_in": (3, "int1"),
                "d_out": (1, "int1"),
                "branch": ("simple", "option"),
                "scaling": (0.5, [-1.0, NAN, INF, "x", None, [[0.5]], lambda L: -1.0]),
                "init": ("smooth", "option"),
                "activation": ("tanh", "option"),
                "length_scale": (0.3, "pos"),
                "n_features": (4, "int1"),
            },
            pos=("width", "depth"),
            use=lambda m: m.apply(m.init(KEY), jnp.ones((2, 3))),
        ),
        "models.resnet_field": Spec(
            models.resnet_field,
            {
                "weights": (RES_P, ["x", None, {"v": jnp.ones(3)}]),
                "branch": ("full", "option"),
                "activation": ("relu", "option"),
            },
            pos=("weights",),
            use=lambda f: f(0.5, jnp.ones((2, 4)), None),
        ),
        "models.smooth_weights": Spec(
            models.smooth_weights,
            {
                "key": (KEY, "key"),
                "shape": ((2, 2), ["x", None]),
                "std": (1.0, "pos"),
                "length_scale": (0.3, "pos"),
                "n_features": (4, "int1"),
            },
            pos=("key", "shape"),
            use=lambda w: w(0.5),
        ),
        "models.layer_labels": Spec(
            models.layer_labels, {"params": (RES_P, _NOT_RES)}, pos=("params",)
        ),
        "models.depth_rates": Spec(
            models.depth_rates,
            {"params": (RES_P, _NOT_RES), "rate": (None, ["x", -1.0, NAN])},
            pos=("params",),
        ),
        "kernels.feature_updates": Spec(
            kernels.feature_updates,
            {
                "apply": (RES.apply, "fn"),
                "params": (RES_P, ["x", None]),
                "batch": (
                    _XB,
                    ["x", None, (jnp.ones((2, 3)),), (jnp.ones((2, 4)), jnp.zeros((2, 1)))],
                ),
                "updates": (RES_P, ["x", None, {"w": 1.0}]),
                "loss": ("mse", "option"),
            },
            pos=("apply", "params", "batch", "updates"),
            names={"params": ("updates",), "batch": ("x",)},
        ),
        "kernels.steer_feature_speed": Spec(
            kernels.steer_feature_speed,
            {
                "targets": (0.1, [-1.0, NAN, "x", [0.1, 0.1], [[0.1]]]),
                "apply": (RES.apply, "fn"),
                "labels": (None, ["x", {"w": 1}]),
                "every_step": (True, ["x", None]),
            },
            pos=("targets", "apply"),
            use=lambda tx: tx.update(RES_P, tx.init(RES_P), RES_P, x=_XB[0]),
        ),
        "kernels.coord_check": Spec(
            kernels.coord_check,
            {
                "make_model": (lambda w: models.mlp([3, w, 1]), "fn"),
                "widths": ([2, 4], [[4, 2], [2], [2, 2.5], "x", None, [0, 2]]),
                "optimizer": (optax.sgd(0.1), [optax.sgd, "x", None]),
                "steps": (1, "int1"),
                "batch": (_XB, ["x", None, (jnp.ones((2, 3)),)]),
                "key": (KEY, "key"),
                "seeds": (1, "int1"),
                "loss": ("mse", "option"),
            },
            pos=("make_model", "widths"),
        ),
    }
)

MODULES = {
    "models": "flowax.models",
    "dynamics": "flowax.dynamics",
    "measures": "flowax.dynamics.measures",
    "transport": "flowax.dynamics.transport",
    "games": "flowax.dynamics.games",
    "diffusion": "flowax.dynamics.diffusion",
    "kernels": "flowax.kernels",
}

CASES = [(name, arg) for name, spec in SPECS.items() for arg in spec.args]


def test_every_public_function_has_a_spec():
    missing = []
    for short, mod in MODULES.items():
        m = importlib.import_module(mod)
        for n in m.__all__:
            obj = getattr(m, n)
            if (
                inspect.ismodule(obj) or inspect.isclass(obj) or not callable(obj)
            ):  # classes: containers
                continue
            if f"{short}.{n}" not in SPECS and f"{short}.{n}" not in UNFUZZED:
                missing.append(f"{short}.{n}")
    assert not missing, missing


@pytest.mark.parametrize("name", sorted(SPECS))
def test_valid_call_succeeds(name):
    spec = SPECS[name]
    r = jax.block_until_ready(spec.run({k: v for k, (v, _) in spec.args.items()}))
    assert not flagged(r), name


@pytest.mark.parametrize("name,arg", CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_fuzz(name, arg):
    spec = SPECS[name]
    valid, kind = spec.args[arg]
    bad = [(repr(m)[:60], outcome(spec, arg, m)) for m in mutations(kind, valid)]
    wrong = [(m, o) for m, o in bad if o not in ("named", "data")]
    assert not wrong, wrong


_ = optax  # optimizers are options of descent_step, fuzzed through lr


# ------------------------------------------------------------- the examples of issue #11

_W2 = Particles(jnp.full(4, 0.5), P.positions)  # mass 2
ISSUE_EXAMPLES = [
    (
        lambda: transport.barycenter_fixed_support(
            GRID, HIST, jnp.ones(1), lam=0.5, tau=0.5, threshold=INF
        ),
        "threshold",
    ),
    (
        lambda: transport.barycenter_particles(
            [NU],
            jnp.ones(1),
            lam=0.5,
            tau=0.1,
            n_particles=3,
            key=KEY,
            lr=0.2,
            steps=2,
            threshold=-1.0,
        ),
        "threshold",
    ),
    (
        lambda: transport.barycenter_particles(
            [NU],
            jnp.ones(1),
            lam=0.5,
            tau=0.1,
            n_particles=3,
            key=KEY,
            lr=0.2,
            steps=2,
            threshold=NAN,
        ),
        "threshold",
    ),
    (
        lambda: transport.barycenter_particles(
            [_W2], jnp.ones(1), lam=0.5, tau=0.1, n_particles=3, key=KEY, lr=0.2, steps=2
        ),
        "measures[0].weights",
    ),
    (
        lambda: transport.gaussian_barycenter(
            jnp.zeros((2, 1)), jnp.ones(2), jnp.ones(2) / 2, lam=0.1, tau=0.1, iterations=0
        ),
        "iterations",
    ),
    (
        lambda: transport.gaussian_barycenter(
            jnp.zeros((2, 1)), jnp.array([-1.0, 1.0]), jnp.ones(2) / 2, lam=0.1, tau=0.1
        ),
        "variances",
    ),
    (lambda: kernels.kernel_flow(jnp.array([[1.0, 2.0], [2.0, 1.0]]), jnp.ones(2)), "ntk_train"),
    (lambda: measures.wfr_field(ENERGY, alpha=-1.0), "alpha"),
    (lambda: measures.wfr_field(ENERGY, beta=NAN), "beta"),
    (lambda: measures.langevin_step(ENERGY, lr=0.1, temperature=-0.5), "temperature"),
    (
        lambda: measures.first_variation(ENERGY, P._replace(weights=P.weights.at[0].set(NAN))),
        "particles.weights",
    ),
    (
        lambda: transport.gaussian_entropic_ot(
            jnp.zeros(2), jnp.array([[1.0, 2.0], [2.0, 1.0]]), jnp.zeros(2), jnp.eye(2), lam=0.1
        ),
        "cov_a",
    ),
    (
        lambda: transport.gaussian_entropic_ot(
            jnp.zeros(2), jnp.array([[1.0, 0.5], [0.0, 1.0]]), jnp.zeros(2), jnp.eye(2), lam=0.1
        ),
        "cov_a",
    ),
    (lambda: dynamics.iterate(STEPPER, jnp.ones(2), steps=2, dt=[[0.5]]), "dt"),
    (
        lambda: dynamics.integrate(field_, jnp.ones(0), t1=1.0, diffusion=field_, key=KEY, dt0=0.1),
        "y0",
    ),
    (lambda: models.multi_index_teacher(KEY, d_in=3, n=0), "n"),
    (lambda: models.multi_index_teacher(KEY, d_in=3, n=-4), "n"),
    (
        lambda: models.linear_teacher(KEY, d_in=3, d_out=3, n=5, singular_values=(2.0, -1.0)),
        "singular_values",
    ),
    (lambda: measures.fourier_features(jnp.ones((3, 1, 1)), 2), "x"),
    (lambda: transport.entropic_ot(P, NU, lam=0.5, max_iterations=0), "max_iterations"),
    (lambda: transport.entropic_ot(P, NU, lam=0.5, max_iterations=-3), "max_iterations"),
    (lambda: measures.two_layer_risk(X, Y)(P), "particles.positions"),  # [m, d], not [m, 1 + d]
    (
        lambda: measures.two_layer_risk(X, Y)(Particles(jnp.ones(0), jnp.ones((0, 3)))),
        "particles.weights",
    ),
    (
        lambda: measures.mean_field_langevin(ENERGY, P, temperature=0.1, lr=0.1, steps=2, key=0),
        "key",
    ),
    (lambda: dynamics.gradient_flow(lambda p, q, r: quad(p), jnp.ones(2), t1=1.0), "loss"),
    (lambda: measures.wfr_flow(lambda: 0.0, P, t1=1.0), "objective"),
    (lambda: dynamics.integrate(lambda t, y: y, jnp.ones(2), t1=1.0), "field"),
    (lambda: dynamics.sweep(lambda g: g, jnp.ones(2), devices="cpu"), "devices"),
    (lambda: dynamics.raise_if_failed(None), "result"),
    (lambda: transport.entropic_ot(P, NU, lam="0.5"), "lam"),
    (lambda: dynamics.integrate(field_, jnp.ones(2), t1=None), "t1"),
    (
        lambda: measures.mean_field_langevin(
            ENERGY, P, temperature="hot", lr=0.1, steps=2, key=KEY
        ),
        "temperature",
    ),
    (lambda: models.two_layer(0, d_in=3), "width"),
    (lambda: models.two_layer(4, d_in=0), "d_in"),
    (lambda: kernels.ntk_drift(NET.apply, None), "params0"),
]


@pytest.mark.parametrize("call,name", ISSUE_EXAMPLES, ids=[n for _, n in ISSUE_EXAMPLES])
def test_the_examples_of_the_issue_give_named_errors(call, name):
    with pytest.raises((ValueError, TypeError), match=rf"^{re.escape(name)}(\[|:| |\.)"):
        jax.block_until_ready(call())


def test_a_field_nonfinite_at_t0_stops_at_once_as_nonfinite():
    # was: 16,384 rejected steps, status "max steps reached", nonfinite_t = inf
    traj = dynamics.gradient_flow(lambda p: jnp.sum(jnp.sqrt(p - 2.0)), jnp.ones(2), t1=1.0)
    assert dynamics.STATUS_NAMES[int(traj.stats.status)] == "nonfinite"
    assert float(traj.stats.nonfinite_t) == 0.0 and float(traj.stats.t_final) == 0.0
    assert int(traj.stats.num_rejected) == 0
    # the same inside a sweep: the bad lane alone, the good one untouched
    out = dynamics.sweep(
        lambda c: (
            dynamics.integrate(
                lambda t, y, a: -c * y / (c - 1.0), jnp.ones(1), t1=1.0, n_save=2
            ).stats.status
        ),
        jnp.array([1.0, 2.0]),
        progress=False,
    )
    assert out.tolist() == [2, 0]


def test_a_threshold_of_zero_in_the_particle_barycenter_is_reported_as_data():
    # threshold 0: Sinkhorn runs max_iterations and never meets it -> inner failure, status 4
    traj = transport.barycenter_particles(
        [NU],
        jnp.ones(1),
        lam=0.5,
        tau=0.1,
        n_particles=3,
        key=KEY,
        lr=0.2,
        steps=2,
        threshold=0.0,
        max_iterations=5,
    )
    assert dynamics.STATUS_NAMES[int(traj.stats.status)] == "inner_solver_not_converged"


# ------------------------------------------------------------------- exhaustive variant

EXTRA = {
    "pos": [True, 1j, np.ones(1), np.float32(NAN), -INF, jnp.array([0.5, 0.5])],
    "nonneg": [True, 1j, np.ones(1), -INF, jnp.array([0.5, 0.5])],
    "real": [1j, np.ones(2), -INF],
    "int1": [True, np.float64(3.0), 10**30 * 0 - 1, np.array([2]), jnp.asarray(2)],
    "int0": [True, np.float64(3.0), np.array([2])],
    "option": [None, "", ["relu"]],
    "option_or_none": ["", ["relu"]],
    "key": [jnp.ones(2, jnp.float32), jnp.ones((2, 3), jnp.uint32), np.int64(0)],
    "fn": [None, [quad], {"f": quad}],
}


@pytest.mark.slow
@pytest.mark.parametrize("name,arg", CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_fuzz_exhaustive(name, arg):
    spec = SPECS[name]
    valid, kind = spec.args[arg]
    extra = EXTRA.get(kind, []) if isinstance(kind, str) else []
    bad = [(repr(m)[:60], outcome(spec, arg, m)) for m in extra]
    wrong = [(m, o) for m, o in bad if o not in ("named", "data")]
    assert not wrong, wrong
