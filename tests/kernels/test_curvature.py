"""Curvature: HVP and Gauss-Newton products, Lanczos eigenpairs, SLQ, Hutchinson, against
closed forms, dense eigh, and the empirical NTK."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import kernels, models

N = 20


@pytest.fixture(scope="module")
def quadratic():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    lam = np.concatenate([np.linspace(-3.0, 5.0, N - 2), [7.0, 9.0]])  # distinct, some < 0
    a = (q * lam) @ q.T
    a = 0.5 * (a + a.T)

    # a pytree of parameters: the first 12 coordinates in "u" [3, 4], the other 8 in "v"
    def unflat(x):
        return {"u": x[:12].reshape(3, 4), "v": x[12:]}

    def flat(p):
        return jnp.concatenate([p["u"].ravel(), p["v"]])

    def loss(p):
        x = flat(p)
        return 0.5 * x @ jnp.asarray(a) @ x

    return a, np.linalg.eigh(a), loss, unflat(jnp.asarray(rng.standard_normal(N))), flat, unflat


def test_hvp_is_a_times_v(quadratic):
    a, _, loss, p, flat, unflat = quadratic
    v = unflat(jnp.arange(N, dtype=float))
    np.testing.assert_allclose(flat(kernels.hvp(loss, p, v)), a @ np.arange(N), rtol=1e-12)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_lanczos_extreme_eigenpairs_equal_eigh(quadratic, which):
    a, (lam, u), loss, p, flat, _ = quadratic
    eig = kernels.top_eigenpairs(loss, p, k=3, num_iters=N, key=jax.random.key(1), which=which)
    want = lam[::-1][:3] if which == "largest" else lam[:3]
    np.testing.assert_allclose(eig.values, want, rtol=1e-10, atol=1e-10)
    assert bool(eig.converged) and np.all(np.asarray(eig.residuals) < 1e-9)
    cols = np.arange(N)[::-1][:3] if which == "largest" else np.arange(3)
    for i, c in enumerate(cols):  # each Ritz vector is the eigenvector (up to sign)
        y = np.asarray(flat(jax.tree_util.tree_map(lambda x, i=i: x[i], eig.vectors)))
        assert abs(abs(y @ u[:, c]) - 1) < 1e-10


def test_no_ghost_eigenvalues_with_k_near_the_dimension(quadratic):
    _, (lam, _), loss, p, _, _ = quadratic
    eig = kernels.top_eigenpairs(loss, p, k=N - 1, num_iters=N, key=jax.random.key(2))
    np.testing.assert_allclose(eig.values, lam[::-1][: N - 1], rtol=1e-9, atol=1e-9)
    assert len(np.unique(np.round(np.asarray(eig.values), 6))) == N - 1  # no duplicates


def test_low_rank_operator_breakdown_keeps_ritz_values_exact():
    # rank 2 in dimension 10: the Krylov space is exhausted after 2 steps; restarts continue in
    # the null space, so the top 3 values are (4, 1, 0) exactly and nothing spurious appears
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((10, 2)))
    a = jnp.asarray(q @ np.diag([4.0, 1.0]) @ q.T)
    eig = kernels.top_eigenpairs(
        None, jnp.zeros(10), k=3, num_iters=10, key=jax.random.key(0), operator=lambda v: a @ v
    )
    np.testing.assert_allclose(eig.values, [4.0, 1.0, 0.0], atol=1e-12)


def scalar_chain(depth, n=40, seed=0):
    """Deep linear scalar network f(x) = x prod_l w_l, y = w* x: loss (1/n) sum (f - y)^2."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(n))
    w_star = 1.7
    y = w_star * x

    def loss(w):
        return jnp.mean((x * jnp.prod(w) - y) ** 2)

    # a minimizer: any w with prod w = w*, e.g. w_l = w*^(1/L) times factors whose product is 1
    f = np.exp(rng.uniform(-0.3, 0.3, depth))
    f = f / np.exp(np.mean(np.log(f)))
    w = w_star ** (1 / depth) * f
    sigma2 = float(jnp.mean(x**2))
    # H = 2 sigma^2 g g^T with g_l = prod_{k != l} w_k = w*/w_l: rank one, top eigenvalue
    # 2 sigma^2 w*^2 sum_l 1/w_l^2
    top = 2 * sigma2 * w_star**2 * np.sum(1 / w**2)
    return loss, jnp.asarray(w), top


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_deep_linear_scalar_chain_closed_form():
    loss, w, top = scalar_chain(4)
    hess = np.asarray(jax.hessian(loss)(w))
    np.testing.assert_allclose(np.linalg.eigvalsh(hess)[-1], top, rtol=1e-8)
    assert np.linalg.matrix_rank(hess, tol=1e-8 * top) == 1
    loss, w, top = scalar_chain(64, seed=1)
    eig = kernels.top_eigenpairs(loss, w, k=1, num_iters=8, key=jax.random.key(0))
    np.testing.assert_allclose(eig.values[0], top, rtol=1e-8)
    np.testing.assert_allclose(kernels.sharpness(loss, w, key=jax.random.key(0)), top, rtol=1e-8)


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_gauss_newton_is_the_hessian_at_interpolation_and_matches_the_ntk():
    # deep linear 3-4-4-1 on an exactly realizable target: at a zero-loss point G = H
    model = models.deep_linear([3, 4, 4, 1])
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, 3))
    y = model.apply(params, x)  # interpolated by construction

    def loss(p):
        return jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, axis=1))

    v = jax.tree_util.tree_map(jnp.ones_like, params)
    gv = kernels.gnvp(model.apply, params, x, v)
    hv = kernels.hvp(loss, params, v)
    for a, b in zip(jax.tree_util.tree_leaves(gv), jax.tree_util.tree_leaves(hv), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the nonzero spectrum of G = (2/n) J^T J is that of (2/n) J J^T = (2/n) NTK (any point)
    mlp = models.mlp([3, 5, 1], activation="tanh", bias_std=0.3)
    p = mlp.init(jax.random.key(2))
    ntk = kernels.empirical_ntk(mlp.apply, p, x, method="jacobian")
    want = np.sort(np.linalg.eigvalsh(2 / 6 * np.asarray(ntk)))[::-1]
    eig = kernels.top_eigenpairs(
        None,
        p,
        k=6,
        num_iters=26,
        key=jax.random.key(3),
        operator=lambda u: kernels.gnvp(mlp.apply, p, x, u),
    )
    np.testing.assert_allclose(eig.values, want, rtol=1e-9, atol=1e-11)


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_slq_reproduces_moments_and_the_spectrum_of_a_spiked_matrix():
    # per probe, Gauss quadrature with m nodes: v^T A^j v = sum_i w_i theta_i^j, j <= 2m - 1
    rng = np.random.default_rng(4)
    n, m = 300, 12
    g = rng.standard_normal((n, 2 * n)) / np.sqrt(2 * n)
    a = g @ g.T + np.diag(np.concatenate([[6.0, 4.0], np.zeros(n - 2)]))  # bulk [0.09, 2.9]
    a = 0.5 * (a + a.T)
    op = lambda v: jnp.asarray(a) @ v  # noqa: E731
    dens = kernels.spectral_density(
        None, jnp.zeros(n), key=jax.random.key(5), num_probes=6, num_iters=m, operator=op
    )
    assert dens.nodes.shape == (6, m)
    np.testing.assert_allclose(np.asarray(dens.weights).sum(1), 1.0, rtol=1e-12)
    # reproduce the probe: the same key splits as inside spectral_density
    k1, _ = jax.random.split(jax.random.split(jax.random.key(5), 6)[0])
    v = np.asarray(jax.random.rademacher(k1, (n,), jnp.float64))
    v = v / np.linalg.norm(v)
    for j in range(2 * m):
        exact = v @ np.linalg.matrix_power(a, j) @ v
        quad = float(np.sum(dens.weights[0] * dens.nodes[0] ** j))
        np.testing.assert_allclose(quad, exact, rtol=1e-8)
    # the pooled quadrature measure against the exact spectrum (uniform on the eigenvalues):
    # matching 2m - 1 moments on an interval of width W bounds W1 by ~ pi W / (2m) (Jackson);
    # the probes' weights add a sampling error ~ W / sqrt(n P); require W1 / W below their sum
    lam = np.linalg.eigvalsh(a)
    width = lam[-1] - lam[0]
    nodes, weights = np.asarray(dens.nodes).ravel(), np.asarray(dens.weights).ravel() / 6
    grid = np.linspace(lam[0] - 0.1, lam[-1] + 0.1, 20001)
    cdf_q = np.array([weights[nodes <= t].sum() for t in grid])
    cdf_e = np.searchsorted(lam, grid, side="right") / n
    w1 = np.sum(np.abs(cdf_q - cdf_e)) * (grid[1] - grid[0])
    assert w1 / width < np.pi / (2 * m) + 1 / np.sqrt(n * 6), w1 / width
    # the two outliers are found: the top Ritz values of a probe sit at the top eigenvalues
    np.testing.assert_allclose(np.sort(np.asarray(dens.nodes[0]))[-2:], lam[-2:], rtol=1e-6)
    # the second moment estimates tr(A^2) / n
    assert abs(float(dens.moments(2)) - np.trace(a @ a) / n) < 0.1 * np.trace(a @ a) / n


@pytest.mark.slow  # 9-24 s: the suite's 15-minute budget (make test-slow)
def test_hutchinson_exact_on_diagonal_and_error_shrinks_like_sqrt():
    d = jnp.asarray(np.linspace(0.5, 3.0, 50))
    op = lambda v: d * v  # noqa: E731
    one = kernels.hessian_trace(
        None, jnp.zeros(50), key=jax.random.key(0), num_probes=1, operator=op
    )
    np.testing.assert_allclose(one.value, float(d.sum()), rtol=1e-14)  # z_i^2 = 1
    # a dense symmetric matrix: the RMS error over 200 seeds vs the number of probes
    rng = np.random.default_rng(6)
    b = rng.standard_normal((40, 40))
    a = jnp.asarray(b + b.T)
    tr = float(jnp.trace(a))
    probes = [4, 16, 64]
    rms = []
    for p in probes:
        est = jax.vmap(
            lambda k, p=p: (
                kernels.hessian_trace(
                    None, jnp.zeros(40), key=k, num_probes=p, operator=lambda v: a @ v
                ).value
            )
        )(jax.random.split(jax.random.key(p), 200))
        rms.append(float(jnp.sqrt(jnp.mean((est - tr) ** 2))))
    slope = np.polyfit(np.log(probes), np.log(rms), 1)[0]
    # 200 seeds give each RMS to ~5%: the fitted slope is -1/2 within 0.1
    assert abs(slope + 0.5) < 0.1, (slope, rms)
    # Hutch++ on a fast-decaying spectrum beats Hutchinson at an equal budget
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    c = jnp.asarray((q * 2.0 ** -np.arange(40.0)) @ q.T)
    errs = {}
    for method in ("hutchinson", "hutch++"):
        est = jax.vmap(
            lambda k, method=method: (
                kernels.hessian_trace(
                    None,
                    jnp.zeros(40),
                    key=k,
                    num_probes=12,
                    method=method,
                    operator=lambda v: c @ v,
                ).value
            )
        )(jax.random.split(jax.random.key(9), 100))
        errs[method] = float(jnp.sqrt(jnp.mean((est - jnp.trace(c)) ** 2)))
    # (Hutch++'s error falls like 1/P against Hutchinson's 1/sqrt(P); at P = 12 on this spectrum
    # the measured gain is ~4x over 100 seeds: require 2x)
    assert errs["hutch++"] < 0.5 * errs["hutchinson"], errs


def test_jit_vmap_no_retrace_and_nonfinite_reported():
    loss_of = lambda s: lambda w: s * jnp.sum(w**2) + jnp.sum(w[:2]) ** 2  # noqa: E731
    w0 = jnp.ones(5)

    def top(s):
        return kernels.top_eigenpairs(loss_of(s), w0, k=2, num_iters=5, key=jax.random.key(0))

    f = jax.jit(chex.assert_max_traces(top, n=1))
    a, b = f(1.0), f(2.0)
    # H = 2 s I + 2 [1 1; 1 1] on the first two coordinates: top 2 s + 4, then 2 s
    np.testing.assert_allclose(a.values, [6.0, 2.0], rtol=1e-10)
    np.testing.assert_allclose(b.values, [8.0, 4.0], rtol=1e-10)
    batched = jax.vmap(top)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(batched.values, [[6.0, 2.0], [8.0, 4.0]], rtol=1e-10)
    bad = kernels.top_eigenpairs(
        lambda w: jnp.sum(jnp.sqrt(w)), -w0, k=1, num_iters=3, key=jax.random.key(0)
    )  # the Hessian -1/(4 w^1.5) is NaN at w < 0: reported, not a silent eigenvalue
    assert not bool(bad.converged) and not np.isfinite(float(bad.values[0]))


def test_bad_input(quadratic):
    _, _, loss, p, _, _ = quadratic
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="^v: expected a pytree of structure"):
        kernels.hvp(loss, p, jnp.ones(N))
    with pytest.raises(ValueError, match="^k: expected an int >= 1"):
        kernels.top_eigenpairs(loss, p, k=0, key=key)
    with pytest.raises(ValueError, match="^k: expected at most the dimension 20"):
        kernels.top_eigenpairs(loss, p, k=21, num_iters=30, key=key)
    with pytest.raises(ValueError, match="^num_iters: expected at least k = 5"):
        kernels.top_eigenpairs(loss, p, k=5, num_iters=3, key=key)
    with pytest.raises(ValueError, match="^which: expected one of"):
        kernels.top_eigenpairs(loss, p, which="magnitude", key=key)
    with pytest.raises(ValueError, match="^loss: expected a function returning a real scalar"):
        kernels.top_eigenpairs(lambda q: q["v"], p, key=key)
    with pytest.raises(ValueError, match="^num_probes: expected an int >= 1"):
        kernels.spectral_density(loss, p, key=key, num_probes=0)
    with pytest.raises(ValueError, match="^method: expected one of"):
        kernels.hessian_trace(loss, p, key=key, method="exact")
    with pytest.raises(ValueError, match="^loss: expected one of"):
        kernels.gnvp(lambda q, x: x, p, jnp.ones((2, 1)), p, loss="hinge")


def test_gd_on_a_quadratic_is_bounded_iff_the_step_is_below_two_over_the_sharpness(quadratic):
    # GD on 1/2 x^T A x (A positive definite: the test matrix shifted by 3.5, spectrum in
    # [0.5, 12.5]) multiplies the top eigen-component by (1 - eta lambda_max) per step: bounded
    # iff eta < 2 / lambda_max (the edge of stability's threshold), with lambda_max the sharpness
    # that Lanczos finds
    a = jnp.asarray(quadratic[0]) + 3.5 * jnp.eye(N)
    x0 = jnp.asarray(np.random.default_rng(7).standard_normal(N))
    top = float(
        kernels.sharpness(lambda x: 0.5 * x @ a @ x, x0, key=jax.random.key(0), num_iters=N)
    )
    np.testing.assert_allclose(top, 12.5, rtol=1e-10)

    def final_norm(eta):
        x = jax.lax.fori_loop(0, 400, lambda _, x: x - eta * (a @ x), x0)
        return float(jnp.linalg.norm(x))

    # per step the top component shrinks by |1 - 1.96| = 0.96 (0.96^400 = 8e-8) or grows by
    # 1.04 (1.04^400 = 6.5e6); the others contract faster
    norm0 = float(jnp.linalg.norm(x0))
    assert final_norm(0.98 * 2 / top) < 1e-6 * norm0
    assert final_norm(1.02 * 2 / top) > 1e5 * norm0


@pytest.mark.slow  # 32 s; examples/edge_of_stability.py shows it; contract runs track_sharpness
def test_tracked_sharpness_edge_of_stability_and_warm_equals_cold():
    # full-batch GD on a small tanh MLP at eta = 0.2: the sharpness starts at 6.1 < 2/eta = 10,
    # rises (progressive sharpening), then hovers at 2/eta while the loss keeps falling
    # non-monotonically (Cohen et al. 2021). Calibrated once against cold Lanczos: over steps
    # 600..1200 it stays within 9.7..10.4; the band asserted is 2/eta +- 10%.
    from flowax import dynamics

    model = models.mlp([3, 16, 1], activation="tanh")
    x = jax.random.normal(jax.random.key(0), (32, 3))
    y = jnp.sin(2 * x[:, :1])

    def loss(p):
        return jnp.mean((model.apply(p, x) - y) ** 2)

    p0 = model.init(jax.random.key(1))
    eta, every, steps = 0.2, 20, 1200
    tracked = kernels.track_sharpness(
        dynamics.descent_step(loss, lr=eta),
        loss,
        key=jax.random.key(2),
        every=every,
        num_iters=6,
    )
    traj = dynamics.iterate(
        tracked,
        p0,
        steps=steps,
        save_steps=np.arange(0, steps + 1, every),
        dt=eta,
        observables={"sharpness": lambda t, s: s.sharpness, "params": lambda t, s: s.params},
    )
    assert bool(traj.stats.ok) and bool(traj.stats.inner_ok)  # every warm update met 1e-3
    sharp = np.asarray(traj.values["sharpness"])
    # warm starts (6 Lanczos steps per save) == a cold 40-step Lanczos at every save
    cold = jax.vmap(lambda p: kernels.sharpness(loss, p, key=jax.random.key(3), num_iters=40))(
        traj.values["params"]
    )
    np.testing.assert_allclose(sharp, cold, rtol=1e-3)
    assert sharp[0] < 0.65 * 2 / eta and np.all(np.diff(sharp[:20]) > 0)  # sharpening
    late = sharp[len(sharp) // 2 :]
    assert np.all(np.abs(late * eta / 2 - 1) < 0.1), late
    assert float(loss(traj.final.params)) < 0.05 * float(loss(p0))
    # the same warm-started scan along the saved path (no stepper): == cold at every save
    path = kernels.sharpness_path(loss, traj.values["params"], key=jax.random.key(4), num_iters=6)
    assert bool(np.all(path.converged))
    np.testing.assert_allclose(path.values, cold, rtol=1e-3)


@pytest.mark.slow  # 21 s; tracking is also checked by the edge-of-stability test
def test_sharpness_along_a_gradient_flow_and_at_irregular_save_steps():
    # gradient flow has no step to hook into: save the parameters, then `sharpness_path`
    # warm-starts Lanczos from save to save; `track_sharpness(every=save_steps)` updates exactly
    # at irregular (log-spaced) saves, so every saved value is the sharpness at the saved point.
    # Both == a cold 40-step Lanczos to its 1e-3 relative tolerance at every point.
    from flowax import dynamics

    model = models.mlp([2, 8, 1], activation="tanh")
    x = jax.random.normal(jax.random.key(5), (16, 2))
    y = jnp.cos(2 * x[:, :1])

    def loss(p):
        return jnp.mean((model.apply(p, x) - y) ** 2)

    one = jax.jit(lambda p: kernels.sharpness(loss, p, key=jax.random.key(3), num_iters=40))

    def cold(path):  # one compilation for both paths (same parameter shapes)
        t = jax.tree_util.tree_leaves(path)[0].shape[0]
        return np.array([one(jax.tree_util.tree_map(lambda a: a[i], path)) for i in range(t)])

    p0 = model.init(jax.random.key(6))
    flow = dynamics.gradient_flow(
        loss, p0, t1=40.0, n_save=11, observables={"params": lambda t, p: p}
    )
    path = kernels.sharpness_path(loss, flow.values["params"], key=jax.random.key(7), num_iters=6)
    assert path.values.shape == (11,) and bool(np.all(path.converged))
    want = cold(flow.values["params"])
    np.testing.assert_allclose(path.values, want, rtol=1e-3)
    assert want[-1] > 1.2 * want[0]  # the flow sharpens: the path is not trivially constant

    ks = np.unique(np.round(np.logspace(0, np.log10(150), 8)).astype(int))
    traj = dynamics.iterate(
        kernels.track_sharpness(
            dynamics.descent_step(loss, lr=0.1), loss, key=jax.random.key(8), every=ks
        ),
        p0,
        steps=150,
        save_steps=ks,
        dt=0.1,
        observables={"sharpness": lambda t, s: s.sharpness, "params": lambda t, s: s.params},
    )
    assert bool(traj.stats.inner_ok)
    np.testing.assert_allclose(traj.values["sharpness"], cold(traj.values["params"]), rtol=1e-3)

    with pytest.raises(ValueError, match="^every: expected increasing step counts >= 1"):
        kernels.track_sharpness(
            dynamics.descent_step(loss, lr=0.1), loss, key=jax.random.key(0), every=[3, 2]
        )
    with pytest.raises(ValueError, match="^path: expected parameters with a common leading axis"):
        kernels.sharpness_path(
            loss, {"a": jnp.ones((3, 2)), "b": jnp.ones((4, 2))}, key=jax.random.key(0)
        )
