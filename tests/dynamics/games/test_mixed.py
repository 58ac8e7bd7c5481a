"""Mixed Nash equilibria: conic particle methods against a linear program on a fine grid (scipy),
rates in eta (conic) vs eta^2 (fixed support), finite games, the Nikaido-Isoda closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowax import dynamics
from flowax.dynamics import games
from flowax.dynamics.measures import Particles
from scipy.optimize import linprog

# A game on the torus [0, 1): f(x, y) = phi(x)^T W phi(y) with phi = (1, cos 2 pi x, sin 2 pi x,
# cos 4 pi x, sin 4 pi x). Its equilibrium (by the LP below) is unique with two atoms per player.
W = jnp.array(
    [
        [0.13, -0.13, 0.64, 0.1, -0.54],
        [0.36, 1.3, 0.95, -0.7, -1.27],
        [-0.62, 0.04, -2.33, -0.22, -1.25],
        [-0.73, -0.54, -0.32, 0.41, 1.04],
        [-0.13, 1.37, -0.67, 0.35, 0.9],
    ]
)
GRID = jnp.linspace(0.0, 1.0, 1000, endpoint=False)[:, None]
RPS = jnp.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])


def phi(x):
    t = 2 * jnp.pi * x
    return jnp.stack([jnp.ones_like(t), jnp.cos(t), jnp.sin(t), jnp.cos(2 * t), jnp.sin(2 * t)])


def torus_game(x, y):
    return phi(x[0]) @ W @ phi(y[0])


def ni_torus(t, z):
    return games.nikaido_isoda(
        torus_game, *z, x_candidates=GRID, y_candidates=GRID, steps=20, lr=0.005, domain="torus"
    )


def start(m):
    return Particles(jnp.full(m, 1.0 / m), (jnp.arange(m) / m + 0.5 / m)[:, None])


def lp_equilibrium(k):
    """min_a max_b a^T K b by two linear programs (scipy's HiGHS): (a, b, value)."""
    g, h = k.shape
    res_a = linprog(
        np.r_[np.zeros(g), 1.0],
        A_ub=np.c_[k.T, -np.ones(h)],
        b_ub=np.zeros(h),
        A_eq=np.r_[np.ones(g), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * g + [(None, None)],
        method="highs",
    )
    res_b = linprog(
        np.r_[np.zeros(h), -1.0],
        A_ub=np.c_[-k, np.ones(g)],
        b_ub=np.zeros(g),
        A_eq=np.r_[np.ones(h), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * h + [(None, None)],
        method="highs",
    )
    assert res_a.status == 0 and res_b.status == 0
    return res_a.x[:g], res_b.x[:h], res_a.x[-1]


def atoms(weights, positions, tol=1e-6):
    """Clusters of the support (on the torus, gaps > 0.01 separate atoms): [(position, mass)]."""
    keep = weights > tol
    w, x = np.asarray(weights)[keep], np.asarray(positions)[keep, 0] % 1.0
    order = np.argsort(x)
    w, x = w[order], x[order]
    out, cur = [], [0]
    for i in range(1, len(x)):
        if x[i] - x[i - 1] > 0.01:
            out.append(cur)
            cur = []
        cur.append(i)
    out.append(cur)
    if len(out) > 1 and x[0] + 1.0 - x[-1] < 0.01:  # wraps around 0
        out[0] = out.pop() + out[0]
    res = []
    for c in out:
        xs = x[c] + np.where(x[c] - x[c[0]] > 0.5, -1.0, 0.0)
        res.append(((np.sum(w[c] * xs) / np.sum(w[c])) % 1.0, np.sum(w[c])))
    return sorted(res)


@pytest.fixture(scope="module")
def lp():
    k = np.asarray(jax.vmap(lambda x: jax.vmap(lambda y: torus_game(x, y))(GRID))(GRID))
    a, b, value = lp_equilibrium(k)
    return atoms(a, GRID), atoms(b, GRID), value


@pytest.fixture(scope="module")
def cp_runs():
    out = {}
    # cp_pp's fixed-point iteration contracts when eta_positions |f_xx| < 1 (|f_xx| ~ 300 here)
    for method, eta_positions in (("cp_mp", 0.005), ("cp_pp", 0.003)):
        out[method] = games.mixed_nash(
            torus_game,
            start(4),
            start(4),
            method=method,
            steps=1600,
            eta_weights=0.05,
            eta_positions=eta_positions,
            domain="torus",
            n_save=17,
            observables={"ni": ni_torus, "value": lambda t, z: games.payoff(torus_game, *z)},
        )
    return out


@pytest.mark.parametrize("method", ["cp_mp", "cp_pp"])
def test_conic_particles_reach_the_lp_equilibrium(lp, cp_runs, method):
    atoms_x, atoms_y, value = lp
    assert len(atoms_x) == len(atoms_y) == 2  # the game's equilibrium: two atoms per player
    traj = cp_runs[method]
    assert bool(traj.stats.ok)
    ni = np.asarray(traj.values["ni"])
    assert ni[-1] < 1e-6 and ni[0] > 1.0
    mu, nu = traj.final
    # the LP's atoms are exact to the grid spacing 1e-3 (and its weights to O(1e-3))
    for got, want in ((atoms(*mu), atoms_x), (atoms(*nu), atoms_y)):
        assert len(got) == len(want)
        np.testing.assert_allclose([p for p, _ in got], [p for p, _ in want], atol=1e-3)
        np.testing.assert_allclose([w for _, w in got], [w for _, w in want], atol=5e-3)
    np.testing.assert_allclose(traj.values["value"][-1], value, atol=1e-5)


def test_conic_rate_scales_like_eta():
    # the flow time k eta to a given NI error is the same for eta and eta / 2
    ni = {}
    for s in (1, 2):
        traj = games.mixed_nash(
            torus_game,
            start(4),
            start(4),
            method="cp_mp",
            steps=300 * s,
            eta_weights=0.05 / s,
            eta_positions=0.005 / s,
            domain="torus",
            n_save=2,
            observables={"ni": ni_torus},
        )
        ni[s] = float(traj.values["ni"][-1])
    # same flow time: the log-errors agree to within ~10% (rate per step ~ eta)
    assert 1e-8 < ni[1] < 1e-3
    np.testing.assert_allclose(np.log(ni[2]), np.log(ni[1]), rtol=0.15)


def ni_rps(t, z):
    eye = jnp.eye(3)
    return games.nikaido_isoda(lambda x, y: x @ RPS @ y, *z, x_candidates=eye, y_candidates=eye)


def rps_run(method, eta, steps):
    f, mu0, nu0 = games.finite_game(RPS)
    mu0 = Particles(jnp.array([0.5, 0.3, 0.2]), mu0.positions)
    return games.mixed_nash(
        f,
        mu0,
        nu0,
        method=method,
        steps=steps,
        eta_weights=eta,
        n_save=21,
        observables={"ni": ni_rps},
    )


def test_rock_paper_scissors_mirror_prox_converges_like_eta_squared():
    rates = {}
    for eta in (0.1, 0.2):
        traj = rps_run("mp", eta, 3000)
        ni = np.asarray(traj.values["ni"])
        assert ni[-1] < 1e-2 * ni[0]
        keep = traj.ts >= 0.25 * traj.ts[-1]
        rates[eta] = -np.polyfit(traj.ts[keep], np.log(ni[keep]), 1)[0]
    # mirror prox on a purely rotational (bilinear) field contracts by 1 - O(eta^2) per step
    np.testing.assert_allclose(rates[0.2] / rates[0.1], 4.0, rtol=0.15)
    # mirror descent-ascent spirals out of the interior equilibrium
    ni = np.asarray(rps_run("mda", 0.1, 3000).values["ni"])
    assert ni[-1] > 2 * ni[0]


def test_replicator_flow_conserves_kl_to_the_equilibrium():
    f, mu0, nu0 = games.finite_game(RPS)
    mu0 = Particles(jnp.array([0.5, 0.3, 0.2]), mu0.positions)
    kl = lambda w: jnp.sum(jnp.log((1 / 3) / w)) / 3  # noqa: E731  KL(a* | a), a* uniform
    traj = games.mixed_nash_flow(
        f,
        mu0,
        nu0,
        t1=20.0,
        alpha=0.0,
        n_save=21,
        rtol=1e-10,
        atol=1e-12,
        observables={"kl": lambda t, z: kl(z[0].weights) + kl(z[1].weights)},
    )
    assert bool(traj.stats.ok)
    np.testing.assert_allclose(traj.values["kl"], traj.values["kl"][0], rtol=1e-7)
    assert float(traj.values["kl"][0]) > 0.05


def test_nikaido_isoda_closed_form_on_the_torus():
    # f = cos 2 pi (x - y): NI = |sum_i a_i e^{2 pi i x_i}| + |sum_j b_j e^{2 pi i y_j}|
    f = lambda x, y: jnp.cos(2 * jnp.pi * (x[0] - y[0]))  # noqa: E731
    k1, k2, k3, k4 = jax.random.split(jax.random.key(3), 4)
    mu = Particles(jax.random.dirichlet(k1, jnp.ones(5)), jax.random.uniform(k2, (5, 1)))
    nu = Particles(jax.random.dirichlet(k3, jnp.ones(7)), jax.random.uniform(k4, (7, 1)))
    moment = lambda p: jnp.abs(jnp.sum(p.weights * jnp.exp(2j * jnp.pi * p.positions[:, 0])))  # noqa: E731
    want = moment(mu) + moment(nu)
    coarse = GRID[::50]  # 20 starts, refined by 100 gradient steps each
    ni = games.nikaido_isoda(
        f, mu, nu, x_candidates=coarse, y_candidates=coarse, steps=100, lr=0.02, domain="torus"
    )
    np.testing.assert_allclose(ni, want, rtol=1e-8)
    # exact search on the 20 starts alone is a lower bound, short by O(h^2)
    ni0 = games.nikaido_isoda(f, mu, nu, x_candidates=coarse, y_candidates=coarse, domain="torus")
    assert want - 0.05 < ni0 <= want


def test_sphere_domain_nikaido_isoda_and_particles_stay_on_the_sphere():
    # f(x, y) = x . y on S^2: NI = |mean of mu| + |mean of nu|
    f = lambda x, y: x @ y  # noqa: E731
    k1, k2, k3 = jax.random.split(jax.random.key(4), 3)

    def sph(k, m):
        g = jax.random.normal(k, (m, 3))
        return g / jnp.linalg.norm(g, axis=1, keepdims=True)

    mu, nu = Particles(jnp.full(6, 1 / 6), sph(k1, 6)), Particles(jnp.full(5, 0.2), sph(k2, 5))
    mean = lambda p: jnp.linalg.norm(p.weights @ p.positions)  # noqa: E731
    starts = sph(k3, 8)
    ni = games.nikaido_isoda(
        f, mu, nu, x_candidates=starts, y_candidates=starts, steps=200, lr=0.2, domain="sphere"
    )
    np.testing.assert_allclose(ni, mean(mu) + mean(nu), rtol=1e-10)
    traj = games.mixed_nash(
        f,
        mu,
        nu,
        method="cp_mp",
        steps=400,
        eta_weights=0.2,
        eta_positions=0.2,
        domain="sphere",
        n_save=5,
        observables={"ni": lambda t, z: mean(z[0]) + mean(z[1])},
    )
    for p in traj.final:
        np.testing.assert_allclose(jnp.linalg.norm(p.positions, axis=1), 1.0, rtol=1e-13)
    ni = np.asarray(traj.values["ni"])
    assert ni[-1] < 1e-3 * ni[0]


def test_vmap_over_seeds_and_jit_without_retrace():
    def run(shift):
        mu = Particles(jnp.full(4, 0.25), (jnp.arange(4) / 4 + shift)[:, None] % 1.0)
        traj = games.mixed_nash(
            torus_game,
            mu,
            start(4),
            method="cp_mp",
            steps=50,
            eta_weights=0.05,
            eta_positions=0.005,
            domain="torus",
            n_save=2,
        )
        return traj.values["value"][-1]

    jrun = jax.jit(run)
    shifts = jnp.array([0.01, 0.07])
    single = [jrun(s) for s in shifts]
    assert jrun._cache_size() == 1
    np.testing.assert_allclose(jax.vmap(run)(shifts), single, rtol=1e-12)


def test_cp_pp_reports_an_unconverged_inner_solve():
    traj = games.mixed_nash(
        torus_game,
        start(4),
        start(4),
        method="cp_pp",
        steps=5,
        eta_weights=0.05,
        eta_positions=0.005,
        domain="torus",
        pp_iterations=2,
    )
    assert dynamics.STATUS_NAMES[int(traj.stats.status)] == "inner_solver_not_converged"


def test_separable_payoff_matches_the_generic_path():
    """The torus game written as phi(x)^T W phi(y) (+ x and y terms): its payoff matrix, first
    variations (never forming the matrix) and a CP-MP run equal the generic vmap/autodiff ones
    to round-off (`nikaido_isoda` evaluates the same payoff matrix)."""
    from flowax.dynamics.games._mixed import first_variations

    fx = lambda x: 0.3 * jnp.sin(2 * jnp.pi * x[0])  # noqa: E731
    hy = lambda y: -0.2 * jnp.cos(4 * jnp.pi * y[0])  # noqa: E731
    sep = games.separable(lambda x: phi(x[0]), lambda y: phi(y[0]), W, x_term=fx, y_term=hy)
    gen = lambda x, y: torus_game(x, y) + fx(x) + hy(y)  # noqa: E731
    key_a, key_b = jax.random.split(jax.random.key(3))
    mu = Particles(jax.random.dirichlet(key_a, jnp.ones(7)), jax.random.uniform(key_a, (7, 1)))
    nu = Particles(jax.random.dirichlet(key_b, jnp.ones(5)), jax.random.uniform(key_b, (5, 1)))
    np.testing.assert_allclose(
        games.payoff_matrix(sep, mu.positions, nu.positions),
        games.payoff_matrix(gen, mu.positions, nu.positions),
        atol=1e-13,
    )
    for u, v in zip(first_variations(sep, mu, nu), first_variations(gen, mu, nu), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-12)
    kw = dict(method="cp_mp", steps=10, eta_weights=0.1, eta_positions=0.002, domain="torus")
    (m1, n1), (m2, n2) = (games.mixed_nash(g, mu, nu, **kw).final for g in (sep, gen))
    for p, q in ((m1, m2), (n1, n2)):
        np.testing.assert_allclose(p.weights, q.weights, atol=1e-12)
        np.testing.assert_allclose(p.positions, q.positions, atol=1e-12)
    bad = games.separable(lambda x: phi(x[0]), lambda y: phi(y[0]), W[:3])
    with pytest.raises(ValueError, match=r"phi: expected features of shape \(3,\)"):
        games.payoff_matrix(bad, mu.positions, nu.positions)
