"""The contract of every public entry point: jit == no jit, no retrace on a second call, shapes
and values under vmap, float32 in -> float32 out, and bad input -> a ValueError naming it.

Each case is ``build(dtype) -> (fn, x, x2)``: ``fn`` a pure function of an array (or pytree)
``x`` of the entry point's numeric input; ``x2`` a second value of the same shape. The checks:
``jit(fn)(x) == fn(x)`` (same program up to compilation: rounding), ``jit`` traces once for
``x`` and ``x2``, ``jit(vmap(fn))([x, x2])[i] == jit(fn)(x_i)``, and ``fn`` of float32 inputs
returns float32 floating leaves (checked by abstract evaluation).
"""

import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import tree_allclose, tree_dtypes
from flowax import dynamics, kernels, models
from flowax.dynamics import diffusion, games, measures, transport
from flowax.dynamics.measures import Particles

KEY = jax.random.key(0)


def _arr(x, dtype):
    return jnp.asarray(x, dtype)


def _particles(dtype, m=5, d=2, seed=1):
    x = jax.random.normal(jax.random.key(seed), (m, d), dtype)
    return Particles(jnp.full(m, 1.0 / m, dtype), x)


def _pair(dtype, m=5, d=2):
    p = _particles(dtype, m, d)
    return p, Particles(p.weights, p.positions * 1.3 + 0.2)


def _pos(p):  # vary only the positions of a measure
    return p.positions


# ------------------------------------------------------------------------------------ models


def case_mlp_init(dtype):
    model = models.mlp([3, 4, 2], activation="tanh", bias_std=0.1)
    return (lambda s: model.init(KEY, s)), _arr(0.5, dtype), _arr(2.0, dtype)


def case_mlp_apply(dtype):
    model = models.mlp([3, 4, 2], parametrization="mup")
    params = model.init(KEY, _arr(1.0, dtype))
    x = jax.random.normal(jax.random.key(2), (6, 3), dtype)
    return (lambda z: model.apply(params, z)), x, 2 * x


def case_resnet_init(dtype):
    model = models.resnet(4, 3, d_in=3, d_out=2, init="smooth", n_features=4)
    return (lambda s: model.init(KEY, s)), _arr(0.5, dtype), _arr(2.0, dtype)


def _resnet(dtype):
    model = models.resnet(4, 3, d_in=3, d_out=2)
    return (
        model,
        model.init(KEY, _arr(1.0, dtype)),
        jax.random.normal(jax.random.key(2), (5, 3), dtype),
    )


def case_resnet_apply(dtype):
    model, params, x = _resnet(dtype)
    return (lambda z: model.apply(params, z, return_features=True)), x, 2 * x


def case_feature_updates(dtype):
    model, params, x = _resnet(dtype)
    y = jnp.ones((5, 2), dtype)

    def fn(z):
        g = jax.grad(lambda p: jnp.mean((model.apply(p, z) - y) ** 2))(params)
        out = kernels.feature_updates(model.apply, params, (z, y), g)
        return out.cos, out.speed, out.inner

    return fn, x, 2 * x


def case_steer_feature_speed(dtype):
    model, params, x = _resnet(dtype)
    tx = kernels.steer_feature_speed(0.1, model.apply)

    def fn(z):
        updates, state = tx.update(params, tx.init(params), params, x=z)
        return updates, state.rates

    return fn, x, 2 * x


def case_deep_linear_end_to_end(dtype):
    model = models.deep_linear([3, 4, 2])
    return (
        (lambda s: models.end_to_end(model, model.init(KEY, s), 3)),
        _arr(0.5, dtype),
        _arr(1.5, dtype),
    )


def case_from_flax(dtype):
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(nn.tanh(nn.Dense(4)(x)))

    x = jax.random.normal(jax.random.key(2), (6, 3), dtype)
    model = models.from_flax(Net(), x[:1])
    params = jax.tree_util.tree_map(lambda w: w.astype(dtype), model.init(KEY))
    return (lambda z: model.apply(params, z)), x, 2 * x


def case_two_layer_to_particles(dtype):
    model = models.two_layer(4, d_in=3)
    params = model.init(KEY, _arr(1.0, dtype))
    return (
        (lambda p: models.two_layer_to_particles(p, weight_std=1.5)),
        params,
        jax.tree_util.tree_map(lambda w: 2 * w, params),
    )


def case_particles_to_two_layer(dtype):
    p = _particles(dtype, 4, 4)
    return (
        (lambda x: models.particles_to_two_layer(Particles(p.weights, x))),
        p.positions,
        2 * p.positions,
    )


# ---------------------------------------------------------------------------------- dynamics


def case_integrate_ode(dtype):
    def fn(y0):
        return dynamics.integrate(
            lambda t, y, a: -y + jnp.sin(t),
            y0,
            t1=1.0,
            n_save=4,
            rtol=1e-10,
            atol=1e-12,
            observables={"y": lambda t, y: y},
        )

    return fn, _arr([1.0, 2.0], dtype), _arr([0.5, -1.0], dtype)


def case_integrate_sde(dtype):
    def fn(y0):
        return dynamics.integrate(
            lambda t, y, a: -y,
            y0,
            t1=1.0,
            dt0=0.1,
            n_save=3,
            diffusion=lambda t, y, a: 0.3 * jnp.ones_like(y),
            key=KEY,
        )

    return fn, _arr([1.0, 2.0], dtype), _arr([0.5, -1.0], dtype)


def _quad(p):
    return 0.5 * jnp.sum(p**2 * jnp.arange(1, p.shape[0] + 1))


def case_gradient_field(dtype):
    field = dynamics.gradient_field(_quad)
    return (lambda p: field(0.0, p, None)), _arr([1.0, 2.0], dtype), _arr([3.0, 1.0], dtype)


def case_gradient_flow(dtype):
    fn = lambda p: dynamics.gradient_flow(_quad, p, t1=1.0, n_save=3, rtol=1e-10, atol=1e-12)  # noqa: E731
    return fn, _arr([1.0, 2.0], dtype), _arr([3.0, 1.0], dtype)


def case_gradient_descent(dtype):
    fn = lambda p: dynamics.gradient_descent(_quad, p, lr=0.1, steps=7, n_save=3)  # noqa: E731
    return fn, _arr([1.0, 2.0], dtype), _arr([3.0, 1.0], dtype)


def case_descent_step_optax(dtype):
    stepper = dynamics.descent_step(lambda p, b: _quad(p - b), optimizer=optax.adam(0.1))
    batch = _arr([0.5, -0.5], dtype)
    fn = lambda p: stepper.value(stepper.step(stepper.step(stepper.init(p), batch), batch))  # noqa: E731
    return fn, _arr([1.0, 2.0], dtype), _arr([3.0, 1.0], dtype)


def case_iterate(dtype):
    stepper = dynamics.descent_step(lambda p, b: _quad(p - b), lr=0.1)
    batches = jnp.stack([_arr([0.5, -0.5], dtype)] * 4)
    fn = lambda p: dynamics.iterate(stepper, p, steps=4, batches=batches, n_save=3)  # noqa: E731
    return fn, _arr([1.0, 2.0], dtype), _arr([3.0, 1.0], dtype)


# ---------------------------------------------------------------------------------- measures

ENERGY = measures.potential_energy(lambda x: 0.5 * x @ x + jnp.sin(x[0]))
INTERACTION = measures.interaction_energy(
    lambda a, b: jnp.exp(-jnp.sum((a - b) ** 2)), v=lambda x: 0.5 * x @ x
)


def _measure_case(fn_of_particles, dtype):
    p = _particles(dtype)
    return (lambda x: fn_of_particles(Particles(p.weights, x))), p.positions, 0.5 * p.positions


def case_potential_energy(dtype):
    return _measure_case(ENERGY, dtype)


def case_interaction_energy(dtype):
    return _measure_case(INTERACTION, dtype)


def case_first_variation(dtype):
    return _measure_case(lambda p: measures.first_variation(INTERACTION, p), dtype)


def case_wfr_field(dtype):
    field = measures.wfr_field(ENERGY, alpha=0.5, normalize=True)
    return _measure_case(lambda p: field(0.0, p, None), dtype)


def case_wfr_flow(dtype):
    return _measure_case(
        lambda p: measures.wfr_flow(INTERACTION, p, t1=0.5, n_save=3, rtol=1e-10, atol=1e-12),
        dtype,
    )


def case_wasserstein_flow(dtype):
    return _measure_case(
        lambda p: measures.wasserstein_flow(ENERGY, p, t1=0.5, n_save=3, rtol=1e-10, atol=1e-12),
        dtype,
    )


def case_fisher_rao_flow(dtype):
    return _measure_case(
        lambda p: measures.fisher_rao_flow(ENERGY, p, t1=0.5, n_save=3, rtol=1e-10, atol=1e-12),
        dtype,
    )


def case_conic_particle_step(dtype):
    stepper = measures.conic_particle_step(ENERGY, lr=0.1, retraction="euclidean")
    return _measure_case(lambda p: stepper.step(stepper.init(p)), dtype)


def case_conic_particle_gd(dtype):
    return _measure_case(lambda p: measures.conic_particle_gd(ENERGY, p, lr=0.1, steps=5), dtype)


def case_langevin_step(dtype):
    stepper = measures.langevin_step(ENERGY, lr=0.1, temperature=measures.log_annealing(0.2))
    return _measure_case(lambda p: stepper.value(stepper.step(stepper.init(p, key=KEY))), dtype)


def case_mean_field_langevin(dtype):
    return _measure_case(
        lambda p: measures.mean_field_langevin(
            ENERGY, p, temperature=0.1, lr=0.1, steps=5, key=KEY
        ),
        dtype,
    )


def case_mean_field_langevin_heun(dtype):
    return _measure_case(
        lambda p: measures.mean_field_langevin(
            ENERGY, p, temperature=0.1, lr=0.1, steps=5, key=KEY, solver="heun"
        ),
        dtype,
    )


def case_log_annealing(dtype):
    return measures.log_annealing(0.5), _arr([0.0, 1.0], dtype), _arr([2.0, 3.0], dtype)


def _data(dtype, n=9, d=2):
    x = jax.random.normal(jax.random.key(3), (n, d), dtype)
    return x, jnp.sin(x[:, 0])


def case_two_layer_risk(dtype):
    x, y = _data(dtype)
    risk = measures.two_layer_risk(x, y, activation="tanh", reg=0.01, chunk_size=4)
    p = _particles(dtype, 5, 3)  # neurons (a, b) in R^{1 + d}
    fn = lambda z: (risk(Particles(p.weights, z)), risk(Particles(p.weights, z), (x[:4], y[:4])))  # noqa: E731
    return fn, p.positions, 0.5 * p.positions


def case_bilevel_two_layer_risk(dtype):
    x, y = _data(dtype)
    risk = measures.bilevel_two_layer_risk(x, y, reg=0.1)
    return _measure_case(risk, dtype)


def case_bilevel_output_weights(dtype):
    x, y = _data(dtype)
    return _measure_case(lambda p: measures.bilevel_output_weights(x, y, p, reg=0.1), dtype)


def case_fourier_features(dtype):
    return (
        (lambda x: measures.fourier_features(x, 3)),
        _arr([0.1, 0.4], dtype),
        _arr([0.2, 0.9], dtype),
    )


def case_sparse_deconvolution(dtype):
    objective = measures.sparse_deconvolution(_arr(np.linspace(0, 1, 5), dtype), cutoff=2, reg=0.1)
    p = _particles(dtype, 4, 1)
    return (lambda x: objective(Particles(p.weights, x))), p.positions, 0.5 * p.positions


# --------------------------------------------------------------------------------- transport


def _ot_case(fn, dtype):
    mu, nu = _pair(dtype)
    return (lambda x: fn(Particles(mu.weights, x), nu)), mu.positions, 0.8 * mu.positions


def case_entropic_ot(dtype):
    return _ot_case(lambda a, b: transport.entropic_ot(a, b, lam=0.5, threshold=1e-10).cost, dtype)


def case_sinkhorn_divergence(dtype):
    return _ot_case(
        lambda a, b: transport.sinkhorn_divergence(a, b, lam=0.5, threshold=1e-10)[0], dtype
    )


def case_barycentric_projection(dtype):
    return _ot_case(
        lambda a, b: transport.barycentric_projection(a, b, lam=0.5, threshold=1e-10)[0], dtype
    )


def case_barycenter_fixed_support(dtype):
    grid = transport.TensorGrid((jnp.linspace(-2, 2, 6, dtype=dtype),) * 2)

    def fn(centres):  # two Gaussian bumps on the grid, centred at centres [2, 2]
        pts = grid.points
        h = jnp.exp(-jnp.sum((pts[None] - centres[:, None]) ** 2, -1))
        h = h / jnp.sum(h, axis=1, keepdims=True)
        res = transport.barycenter_fixed_support(
            grid, h, jnp.full(2, 0.5, dtype), lam=0.5, tau=0.25, mode="log", threshold=1e-6
        )
        return res.histogram, res.n_iters

    return fn, _arr([[0.5, 0.0], [-0.5, 0.2]], dtype), _arr([[0.3, 0.1], [-0.2, 0.0]], dtype)


def case_barycenter_particles(dtype):
    nus = [_particles(dtype, 6, 2, seed) for seed in (4, 5)]

    def fn(init):
        return transport.barycenter_particles(
            nus,
            jnp.full(2, 0.5, dtype),
            lam=0.5,
            tau=0.1,
            n_particles=4,
            key=KEY,
            lr=0.3,
            steps=2,
            init=init,
            threshold=1e-9,
        )

    x = jax.random.normal(jax.random.key(6), (4, 2), dtype)
    return fn, x, 0.5 * x


def case_gaussian_entropic_ot(dtype):
    cov = _arr(np.diag([1.0, 0.5]), dtype)

    def fn(m):
        return transport.gaussian_entropic_ot(m, cov, -m, 2 * cov, lam=0.3)

    return fn, _arr([0.1, 0.2], dtype), _arr([1.0, -1.0], dtype)


def case_gaussian_barycenter(dtype):
    def fn(v):
        return transport.gaussian_barycenter(
            jnp.zeros((2, 1), dtype), v, jnp.full(2, 0.5, dtype), lam=0.2, tau=0.1
        )

    return fn, _arr([1.0, 2.0], dtype), _arr([0.5, 0.7], dtype)


# ------------------------------------------------------------------------------------- games


def _game(x, y):
    return 0.5 * jnp.sum(x**2) + x @ jnp.array([[1.0, 0.5], [-0.3, 2.0]], x.dtype) @ y


def _torus(x, y):
    return jnp.cos(2 * jnp.pi * (x[0] - y[0])) + 0.3 * jnp.sin(2 * jnp.pi * x[0])


def _game_case(fn, dtype):
    y0 = _arr([0.3, -0.2], dtype)
    return (lambda x: fn(x, y0)), _arr([1.0, 0.5], dtype), _arr([-0.4, 0.2], dtype)


def case_game_flow(dtype):
    return _game_case(
        lambda x, y: games.game_flow(_game, x, y, t1=1.0, n_save=3, rtol=1e-10, atol=1e-12), dtype
    )


def case_game_field(dtype):
    field = games.game_field(_game, ratio=2.0)
    return _game_case(lambda x, y: field(0.0, (x, y), None), dtype)


def case_descent_ascent(dtype):
    return _game_case(
        lambda x, y: games.descent_ascent(_game, x, y, eta=0.1, steps=5, method="optimistic"),
        dtype,
    )


def case_descent_ascent_step(dtype):
    stepper = games.descent_ascent_step(_game, eta=0.1, method="proximal")
    return _game_case(lambda x, y: stepper.value(stepper.step(stepper.init((x, y)))), dtype)


def case_local_analysis(dtype):
    def fn(x, y):
        la = games.local_analysis(_game, x, y, eta=0.1)
        return la.jacobian, la.flow_rate, la.averaged_rates, la.rates

    return _game_case(fn, dtype)


def _mixed_case(fn, dtype):
    nu = Particles(jnp.full(3, 1 / 3, dtype), _arr([[0.1], [0.5], [0.8]], dtype))
    w = jnp.full(4, 0.25, dtype)
    x = _arr([[0.05], [0.3], [0.6], [0.9]], dtype)
    return (lambda pos: fn(Particles(w, pos), nu)), x, 0.5 * x


def case_mixed_nash(dtype):
    return _mixed_case(
        lambda mu, nu: games.mixed_nash(
            _torus, mu, nu, steps=5, eta_weights=0.1, eta_positions=0.01, domain="torus"
        ),
        dtype,
    )


def case_mixed_nash_step(dtype):
    stepper = games.mixed_nash_step(_torus, method="cp_pp", eta_weights=0.1, eta_positions=0.01)
    return _mixed_case(lambda mu, nu: stepper.value(stepper.step(stepper.init((mu, nu)))), dtype)


def case_mixed_nash_flow(dtype):
    return _mixed_case(
        lambda mu, nu: games.mixed_nash_flow(
            _torus,
            mu,
            nu,
            t1=0.2,
            n_save=3,
            domain="torus",
            adaptive=False,
            dt0=0.05,
            solver="heun",
        ),
        dtype,
    )


def case_nikaido_isoda(dtype):
    grid = jnp.linspace(0, 1, 16, endpoint=False, dtype=dtype)[:, None]
    return _mixed_case(
        lambda mu, nu: games.nikaido_isoda(
            _torus,
            mu,
            nu,
            x_candidates=grid,
            y_candidates=grid,
            steps=3,
            lr=0.01,
            domain="torus",
        ),
        dtype,
    )


def case_payoff(dtype):
    return _mixed_case(lambda mu, nu: games.payoff(_torus, mu, nu), dtype)


def case_payoff_matrix(dtype):
    return _mixed_case(
        lambda mu, nu: games.payoff_matrix(_torus, mu.positions, nu.positions), dtype
    )


def case_finite_game(dtype):
    def fn(m):
        f, mu, nu = games.finite_game(m)
        return f(mu.positions[0], nu.positions[1]), mu, nu

    m = _arr([[0.0, 1.0], [-1.0, 0.5]], dtype)
    return fn, m, 2 * m


# ----------------------------------------------------------------------------------- kernels

NET = models.mlp([3, 5, 2], activation="tanh", bias_std=0.2)


def _ntk_case(method, dtype):
    params = NET.init(KEY, _arr(1.0, dtype))
    x = jax.random.normal(jax.random.key(7), (4, 3), dtype)
    return (lambda z: kernels.empirical_ntk(NET.apply, params, z, method=method)), x, 2 * x


def case_empirical_ntk_jacobian(dtype):
    return _ntk_case("jacobian", dtype)


def case_empirical_ntk_ntvp(dtype):
    return _ntk_case("ntvp", dtype)


def case_empirical_ntk_structured(dtype):
    return _ntk_case("structured", dtype)


def case_mlp_kernel(dtype):
    fn = kernels.mlp_kernel(2, activation="erf", bias_std=0.1)
    x = jax.random.normal(jax.random.key(8), (4, 3), dtype)
    return fn, x, 2 * x


def case_mlp_kernel_quadrature(dtype):
    fn = kernels.mlp_kernel(1, activation="tanh", normalization="layernorm", quadrature_degree=8)
    x = jax.random.normal(jax.random.key(8), (3, 3), dtype)
    return fn, x, 2 * x


def case_linearize(dtype):
    params = NET.init(KEY, _arr(1.0, dtype))
    lin = kernels.linearize(NET.apply, params)
    x = jax.random.normal(jax.random.key(7), (4, 3), dtype)
    return (lambda p: lin(p, x)), params, jax.tree_util.tree_map(lambda w: 1.1 * w, params)


def case_kernel_flow(dtype):
    k = _arr(np.array([[2.0, 0.5], [0.5, 1.0]]), dtype)
    predict = kernels.kernel_flow(k, _arr([1.0, -1.0], dtype))
    ts = _arr([0.0, 1.0], dtype)
    kt = _arr(np.array([[0.3, 0.2]]), dtype)
    return (
        (lambda f0: predict(ts, f0, f0[:1], kt)),
        _arr([0.1, 0.2], dtype),
        _arr([0.5, 0.0], dtype),
    )


def case_ntk_drift(dtype):
    params = NET.init(KEY, _arr(1.0, dtype))
    drift = kernels.ntk_drift(NET.apply, params)
    x = jax.random.normal(jax.random.key(7), (4, 3), dtype)
    return (lambda p: drift(p, x)), params, jax.tree_util.tree_map(lambda w: 1.2 * w, params)


def case_kernel_alignment(dtype):
    y = _arr([1.0, -1.0, 0.5], dtype)
    k = jax.random.normal(jax.random.key(9), (3, 3), dtype)
    return (lambda a: kernels.kernel_alignment(a @ a.T, y)), k, 2 * k + 1


def case_effective_rank(dtype):
    k = jax.random.normal(jax.random.key(9), (3, 3), dtype)
    return (lambda a: kernels.effective_rank(a @ a.T, kind="participation")), k, 2 * k + 1


def _curvature_case(fn, dtype):
    params = NET.init(KEY, _arr(1.0, dtype))
    x = jax.random.normal(jax.random.key(7), (4, 3), dtype)

    def loss(p, x):
        return jnp.mean((NET.apply(p, x) - 1.0) ** 2)

    return (lambda z: fn(loss, params, z)), x, 2 * x


def case_hvp(dtype):
    return _curvature_case(
        lambda loss, p, x: kernels.hvp(loss, p, jax.tree_util.tree_map(jnp.ones_like, p), x),
        dtype,
    )


def case_gnvp(dtype):
    return _curvature_case(
        lambda loss, p, x: kernels.gnvp(NET.apply, p, x, jax.tree_util.tree_map(jnp.ones_like, p)),
        dtype,
    )


def case_top_eigenpairs(dtype):
    return _curvature_case(
        lambda loss, p, x: kernels.top_eigenpairs(loss, p, x, k=2, num_iters=8, key=KEY).values,
        dtype,
    )


def case_spectral_density(dtype):
    return _curvature_case(
        lambda loss, p, x: kernels.spectral_density(loss, p, x, key=KEY, num_probes=2, num_iters=4),
        dtype,
    )


def case_hessian_trace(dtype):
    return _curvature_case(
        lambda loss, p, x: kernels.hessian_trace(
            loss, p, x, key=KEY, num_probes=6, method="hutch++"
        ),
        dtype,
    )


def case_track_sharpness(dtype):
    def fn(loss, p, x):
        full = lambda q: loss(q, x)  # noqa: E731
        tracked = kernels.track_sharpness(
            dynamics.descent_step(full, lr=0.05), full, key=KEY, every=2, num_iters=4
        )
        state = tracked.step(tracked.step(tracked.init(p)))
        return tracked.value(state).sharpness, tracked.inner_ok(state)

    return _curvature_case(fn, dtype)


def case_sharpness_path(dtype):
    def fn(loss, p, x):
        path = jax.tree_util.tree_map(lambda a: jnp.stack([a, 1.1 * a, 1.2 * a]), p)
        out = kernels.sharpness_path(loss, path, x, key=KEY, num_iters=3, cold_iters=4)
        return out.values, out.converged

    return _curvature_case(fn, dtype)


# diffusion: functions of the queries or of the data (a sweep over datasets is a vmap)
_OU = diffusion.OrnsteinUhlenbeck(T=2.0)


def _ddata(dtype):
    return _arr([[0.0, 1.0], [1.0, 0.5], [-1.0, 0.2], [0.3, -0.8]], dtype)


def case_empirical_score(dtype):
    score = diffusion.empirical_score(_ddata(dtype), _OU, chunk_size=3)
    q = _arr([[0.2, 0.1], [-0.5, 0.4], [0.9, 0.9]], dtype)
    return (lambda y: (score(0.3, y), score.denoiser(0.3, y), score.log_density(0.3, y))), q, -q


def case_empirical_score_of_data(dtype):
    q = _arr([[0.2, 0.1], [-0.5, 0.4]], dtype)
    x = _ddata(dtype)
    return (lambda d: diffusion.empirical_score(d, _OU, chunk_size=3)(0.3, q)), x, 0.5 * x


def case_kernel_smoothed_score(dtype):
    score = diffusion.kernel_smoothed_score(_ddata(dtype), _OU, 0.2, order=3)
    q = _arr([[0.2, 0.1], [-0.5, 0.4]], dtype)
    return (lambda y: score(0.3, y)), q, -q


def case_sample(dtype):
    def fn(d):
        return diffusion.sample(
            diffusion.empirical_score(d, _OU),
            _OU,
            key=jax.random.key(0),
            n=3,
            event_shape=(2,),
            t_min=0.1,
            steps=8,
            dtype=dtype,
        )[0]

    x = _ddata(dtype)
    return fn, x, 0.5 * x


def case_dsm_loss(dtype):
    loss = diffusion.dsm_loss(lambda p, y: p * y, _ddata(dtype), _OU, t=0.4, batch_size=3)
    p = _arr([-0.5, -1.0], dtype)
    return (lambda p: loss(p[None, :], jax.random.key(1))), p, 2 * p


def case_excess_risk(dtype):
    def fn(d):
        score = diffusion.gaussian_score(jnp.zeros(2, dtype), jnp.eye(2, dtype=dtype), _OU)
        return diffusion.excess_risk(score, d, _OU, 0.4, key=jax.random.key(2), n_noise=3)

    x = _ddata(dtype)
    return fn, x, 0.5 * x


def case_memorization_metrics(dtype):
    def fn(y):
        d = _ddata(dtype)
        return (
            diffusion.nearest_neighbours(y, d, chunk_size=3),
            diffusion.memorized_fraction(y, d),
            diffusion.mmd(y, d, bandwidth=0.7),
        )

    q = _arr([[0.0, 0.9], [-0.5, 0.4], [0.9, 0.5]], dtype)
    return fn, q, q + 0.3


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}

# vmap of an adaptive solve batches diffrax's controller: each lane keeps its own steps, but a
# batched reduction may round differently (solver rtol 1e-10 here): allow 1e-7
LOOSE = {
    "integrate_ode",
    "game_flow",
    "mixed_nash_flow",
    "gradient_flow",
    "wfr_flow",
    "wasserstein_flow",
    "fisher_rao_flow",
    "entropic_ot",
    "sinkhorn_divergence",
    "barycentric_projection",
    "barycenter_particles",
}


# Cases whose un-jitted run costs most of their time (op-by-op dispatch around solvers and
# Lanczos loops): the default run checks jit, no retrace, vmap and dtypes; the comparison with
# the un-jitted call runs with the slow tests (`make test-slow`).
EAGER_SLOW = {
    "barycenter_particles",
    "excess_risk",
    "fisher_rao_flow",
    "game_flow",
    "hessian_trace",
    "mean_field_langevin",
    "mean_field_langevin_heun",
    "mixed_nash_flow",
    "sample",
    "sharpness_path",
    "spectral_density",
    "track_sharpness",
    "wasserstein_flow",
    "wfr_flow",
}


def _check_contract(name, *, eager, batched=True):
    chex.clear_trace_counter()
    fn, x, x2 = CASES[name](jnp.float64)
    rtol = 1e-7 if name in LOOSE else 1e-10
    jitted = jax.jit(chex.assert_max_traces(fn, n=1))
    a, b = jitted(x), jitted(x2)  # a second value: no retrace
    if eager:
        tree_allclose(a, fn(x), rtol=rtol, atol=1e-12)
    if not batched:
        return
    both = jax.tree_util.tree_map(lambda u, v: jnp.stack([u, v]), x, x2)
    batched = jax.jit(jax.vmap(fn))(both)  # vmap's rule, compiled (eager vmap: op by op, slow)
    tree_allclose(jax.tree_util.tree_map(lambda v: v[0], batched), a, rtol=rtol, atol=1e-12)
    tree_allclose(jax.tree_util.tree_map(lambda v: v[1], batched), b, rtol=rtol, atol=1e-12)
    fn32, x32, _ = CASES[name](jnp.float32)
    assert tree_dtypes(jax.eval_shape(fn32, x32)) == {np.dtype("float32")}, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_contract(name):
    _check_contract(name, eager=name not in EAGER_SLOW)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EAGER_SLOW))
def test_contract_jit_equals_eager(name):
    _check_contract(name, eager=True, batched=False)


# ------------------------------------------------------------------------------ bad input

P = _particles(jnp.float64)
MU_T = Particles(jnp.full(3, 1 / 3), jnp.array([[0.1], [0.5], [0.8]]))
X, Y = _data(jnp.float64)
NOT_A_KEY = 3
BAD = [
    (lambda: diffusion.empirical_score(jnp.array([[jnp.inf, 0.0]]), _OU), "data"),
    (lambda: diffusion.empirical_score(X, diffusion.OrnsteinUhlenbeck(T=0.0)), "process.T"),
    (lambda: diffusion.empirical_score(_ddata(jnp.float64), _OU)(2.5, X), "t"),
    (lambda: diffusion.kernel_smoothed_score(X, _OU, -0.1), "bandwidth"),
    (
        lambda: diffusion.sample(
            lambda t, y: y, _OU, key=KEY, n=2, event_shape=(2,), t_min=0.1, method="sde"
        ),
        "steps",
    ),
    (lambda: diffusion.dsm_loss(lambda p, y: y, X, _OU, t=0.1, n_noise=0), "n_noise"),
    (lambda: models.mlp([3, 0, 1]), "widths"),
    (lambda: models.mlp([3, 4, 1], parametrization="xavier"), "parametrization"),
    (lambda: models.mlp([3, 4, 1], weight_std=-1.0), "weight_std"),
    (lambda: models.two_layer(4, d_in=3, activation="swish2"), "activation"),
    (lambda: models.particles_to_two_layer(P, weight_std="big"), "weight_std"),
    (lambda: dynamics.integrate(lambda t, y, a: y, jnp.ones(2), t1=-1.0), "t1"),
    (lambda: dynamics.integrate(lambda t, y, a: y, jnp.ones(2), t1=1.0, n_save=0), "n_save"),
    (lambda: dynamics.integrate("f", jnp.ones(2), t1=1.0), "field"),
    (
        lambda: dynamics.integrate(lambda t, y, a: y, jnp.ones(2), t1=1.0, max_steps=1.5),
        "max_steps",
    ),
    (lambda: dynamics.gradient_flow(_quad, jnp.ones(2), t1=1.0, atol=0.0), "atol"),
    (lambda: dynamics.gradient_descent(_quad, jnp.ones(2), lr=jnp.inf, steps=3), "lr"),
    (lambda: dynamics.descent_step(_quad, optimizer=optax.sgd), "optimizer"),
    (
        lambda: dynamics.iterate(
            dynamics.descent_step(_quad, lr=0.1), jnp.ones(2), steps=3, key=NOT_A_KEY
        ),
        "key",
    ),
    (lambda: dynamics.sweep(lambda g: g, jnp.ones(3), batching="pmap"), "batching"),
    (lambda: dynamics.product_grid(a=[[1, 2]]), "a"),
    (lambda: dynamics.raise_if_failed(3.0), "result"),
    (
        lambda: measures.wfr_flow(ENERGY, P._replace(weights=-P.weights), t1=1.0),
        "particles.weights",
    ),
    (lambda: measures.wfr_field(ENERGY, alpha=-1.0), "alpha"),
    (lambda: measures.wasserstein_flow(ENERGY, P, t1=1.0, alpha=jnp.nan), "alpha"),
    (lambda: measures.fisher_rao_flow(ENERGY, P, t1=1.0, beta=-2.0), "beta"),
    (lambda: measures.conic_particle_step(ENERGY, lr=0.1, retraction="sphere"), "retraction"),
    (lambda: measures.conic_particle_gd(ENERGY, P, lr=-0.1, steps=3), "lr"),
    (lambda: measures.langevin_step(ENERGY, lr=0.1, temperature=-0.5), "temperature"),
    (
        lambda: measures.mean_field_langevin(
            ENERGY, P, temperature=0.1, lr=0.1, steps=3, key=NOT_A_KEY
        ),
        "key",
    ),
    (lambda: measures.log_annealing(0.0), "temperature0"),
    (lambda: measures.potential_energy(3.0), "v"),
    (lambda: measures.interaction_energy(None), "kernel"),
    (lambda: measures.two_layer_risk(X, Y, reg=-1.0), "reg"),
    (lambda: measures.two_layer_risk(X, Y, chunk_size=0), "chunk_size"),
    (lambda: measures.bilevel_two_layer_risk(X, Y[:3]), "y"),
    (lambda: measures.bilevel_output_weights(X, Y, P, reg=0.0), "reg"),
    (lambda: measures.fourier_features(jnp.ones((3, 2)), 2), "x"),
    (lambda: measures.sparse_deconvolution(jnp.ones(5), cutoff=2, reg=-1.0), "reg"),
    (lambda: transport.entropic_ot(P, P, lam=-0.1), "lam"),
    (lambda: transport.entropic_ot(P, P, lam=0.1, threshold=-1.0), "threshold"),
    (
        lambda: transport.sinkhorn_divergence(P, P._replace(weights=2 * P.weights), lam=0.1),
        "nu.weights",
    ),
    (
        lambda: transport.barycentric_projection(
            P, Particles(P.weights, jnp.ones((5, 3))), lam=0.1
        ),
        "nu.positions",
    ),
    (
        lambda: transport.barycenter_fixed_support(
            jnp.ones((4, 2)), [P], jnp.ones(1), lam=0.1, tau=0.1, threshold=jnp.inf
        ),
        "threshold",
    ),
    (
        lambda: transport.barycenter_particles(
            [P._replace(weights=2 * P.weights)],
            jnp.ones(1),
            lam=0.1,
            tau=0.1,
            n_particles=3,
            key=KEY,
            lr=0.1,
            steps=2,
        ),
        "measures[0].weights",
    ),
    (
        lambda: transport.barycenter_particles(
            [P._replace(weights=P.weights / P.mass)],
            jnp.ones(1),
            lam=0.1,
            tau=-0.1,
            n_particles=3,
            key=KEY,
            lr=0.1,
            steps=2,
        ),
        "tau",
    ),
    (
        lambda: transport.gaussian_entropic_ot(
            jnp.zeros(2), jnp.eye(2), jnp.zeros(2), jnp.eye(3), lam=0.1
        ),
        "cov_b",
    ),
    (
        lambda: transport.gaussian_barycenter(
            jnp.zeros((2, 1)), jnp.ones(2), jnp.ones(2) / 2, lam=0.1, tau=0.1, iterations=0
        ),
        "iterations",
    ),
    (
        lambda: kernels.empirical_ntk(NET.apply, NET.init(KEY), jnp.ones((2, 3)), method="fast"),
        "method",
    ),
    (
        lambda: kernels.empirical_ntk(
            NET.apply, NET.init(KEY), jnp.ones((2, 3)), batch_size=np.int64(0)
        ),
        "batch_size",
    ),
    (lambda: kernels.mlp_kernel(np.int64(0)), "depth"),
    (lambda: kernels.mlp_kernel(2, normalization="batchnorm"), "normalization"),
    (lambda: kernels.kernel_flow(jnp.ones((2, 3)), jnp.ones(2)), "ntk_train"),
    (lambda: kernels.kernel_alignment(jnp.ones((2, 3)), jnp.ones(2)), "kernel"),
    (lambda: kernels.effective_rank(jnp.eye(2), kind="stable"), "kind"),
    (lambda: kernels.hvp(_quad, jnp.ones(2), jnp.ones(3)), "v"),
    (lambda: kernels.top_eigenpairs(_quad, jnp.ones(2), k=3, num_iters=3, key=KEY), "k"),
    (lambda: kernels.top_eigenpairs(_quad, jnp.ones(2), key=NOT_A_KEY), "key"),
    (lambda: kernels.track_sharpness(_quad, _quad, key=KEY), "stepper"),
    (
        lambda: kernels.track_sharpness(
            dynamics.descent_step(_quad, lr=0.1), _quad, key=KEY, every=0
        ),
        "every",
    ),
    (
        lambda: kernels.track_sharpness(
            dynamics.descent_step(_quad, lr=0.1), _quad, key=KEY, every=[0.5, 2.0]
        ),
        "every",
    ),
    (lambda: kernels.sharpness_path(_quad, jnp.ones((0, 2)), key=KEY), "path"),
    (lambda: kernels.sharpness_path(_quad, jnp.ones((3, 2)), key=KEY, num_iters=0), "num_iters"),
    (lambda: kernels.spectral_density(_quad, jnp.ones(2), key=KEY, num_iters=0), "num_iters"),
    (
        lambda: kernels.hessian_trace(_quad, jnp.ones(2), key=KEY, num_probes=2, method="hutch++"),
        "num_probes",
    ),
    # games
    (
        lambda: games.mixed_nash(
            _torus,
            MU_T._replace(weights=MU_T.weights * 2),
            MU_T,
            steps=2,
            eta_weights=0.1,
            eta_positions=0.1,
            domain="torus",
        ),
        "mu0.weights",
    ),
    (
        lambda: games.mixed_nash(
            _torus, MU_T, MU_T, steps=2, eta_weights=0.1, eta_positions=0.1, domain="sphere"
        ),
        "mu0.positions",
    ),
    (
        lambda: games.mixed_nash(
            lambda x, y: x * y, MU_T, MU_T, steps=2, eta_weights=0.1, eta_positions=0.1
        ),
        "f",
    ),
    (
        lambda: games.mixed_nash(_torus, MU_T, MU_T, steps=2, eta_weights=0.0, eta_positions=0.1),
        "eta_weights",
    ),
    (
        lambda: games.mixed_nash(
            _torus, MU_T, MU_T, steps=2, eta_weights=0.1, method="cp_gda", eta_positions=0.1
        ),
        "method",
    ),
    (
        lambda: games.mixed_nash(
            _torus, MU_T, MU_T, steps=2, eta_weights=0.1, domain="klein", eta_positions=0.1
        ),
        "domain",
    ),
    (
        lambda: games.mixed_nash(
            _torus, MU_T, MU_T, steps=2, eta_weights=0.1, method="mp", eta_positions=0.1
        ),
        "eta_positions",
    ),
    (lambda: games.descent_ascent(_game, jnp.ones(2), jnp.ones(2), eta=-0.1, steps=2), "eta"),
    (
        lambda: games.descent_ascent(
            _game, jnp.ones(2), jnp.ones(2), eta=0.1, steps=2, method="newton"
        ),
        "method",
    ),
    (lambda: games.game_flow(_game, jnp.ones(2), jnp.ones(3), t1=1.0), "f"),
    (
        lambda: games.nikaido_isoda(
            _torus, MU_T, MU_T, x_candidates=jnp.ones((3, 2)), y_candidates=jnp.ones((3, 1))
        ),
        "x_candidates",
    ),
]


@pytest.mark.parametrize("call,name", BAD, ids=[f"{i}-{n}" for i, (_, n) in enumerate(BAD)])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}(\[|:| )"):
        call()
