"""Mixed Nash equilibria: flowax's conic particle mirror prox against fixed grids, NumPy and scipy.

1. The torus game of ``examples/mixed_nash.py``: wall time for CP-MP (8 particles per player) to
   reach a Nikaido-Isoda error of 1e-6, beside fixed-support mirror prox on grids of growing
   size (flowax and the NumPy loop a user would write), whose error on the continuum stalls at
   the grid's discretization error.
2. The per-step cost of CP-MP with m particles per player in d = 16 on the torus
   (f = mean_k cos 2 pi (x_k - y_k) + 0.5 mean_k sin 2 pi x_k): flowax's jitted step (autodiff
   over the m x n payoff) against the same step in NumPy, written straightforwardly (an
   [m, n, d] broadcast) and cleverly (cos(a - b) = cos a cos b + sin a sin b: matrix products).
3. A random finite game (k x k): flowax's fixed-support mirror prox to NI 1e-6 against
   ``scipy.optimize.linprog`` (HiGHS), the independent oracle, values compared.

Compile and steady state are timed separately (min of repeats). ``--quick``: smaller sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import timed  # noqa: E402
from flowax.dynamics import games  # noqa: E402
from flowax.dynamics.measures import Particles  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from mixed_nash import W as TORUS_W  # noqa: E402
from mixed_nash import f as torus_f  # noqa: E402
from mixed_nash import ni as torus_ni  # noqa: E402
from mixed_nash import uniform  # noqa: E402


def numpy_grid_mp(k, eta, steps):
    """Fixed-support mirror prox on a payoff matrix, in NumPy (log-domain weights)."""
    m, n = k.shape
    la, lb = np.full(m, -np.log(m)), np.full(n, -np.log(n))

    def soft(v):
        v = v - v.max()
        e = np.exp(v)
        return e / e.sum()

    for _ in range(steps):
        a, b = soft(la), soft(lb)
        ha, hb = soft(la - eta * (k @ b)), soft(lb + eta * (k.T @ a))
        la, lb = la - eta * (k @ hb), lb + eta * (k.T @ ha)
    return soft(la), soft(lb)


def _first_below(values, level):
    """Index of the first entry <= level (None if never)."""
    hit = np.nonzero(np.asarray(values) <= level)[0]
    return int(hit[0]) if hit.size else None


def part1(quick):
    print("1. torus game: wall time to a Nikaido-Isoda error, CP-MP (8 particles) vs grid MP")
    cp_steps = 200

    def cp(mu0, nu0, n_save, observables=None):
        return games.mixed_nash(
            torus_f,
            mu0,
            nu0,
            method="cp_mp",
            steps=cp_steps,
            eta_weights=0.1,
            eta_positions=0.005,
            domain="torus",
            n_save=n_save,
            observables=observables,
        )

    run_cp = jax.jit(lambda mu0, nu0: cp(mu0, nu0, 2).final)  # compiled once: steady state
    c, s_cp, _ = timed(lambda: run_cp(uniform(8), uniform(8)), 3)
    # The NI curve (an untimed run with the observable at every step).
    ni_cp = np.asarray(cp(uniform(8), uniform(8), cp_steps + 1, {"ni": torus_ni}).values["ni"])
    per_step = s_cp / cp_steps
    k6 = _first_below(ni_cp, 1e-6)
    print(
        f"   flowax CP-MP: {cp_steps} steps {s_cp * 1e3:.2f} ms (compile {c - s_cp:.2f} s), "
        f"NI {ni_cp[-1]:.1e} at the end, 1e-6 at step {k6} = {k6 * per_step * 1e3:.2f} ms"
    )
    steps = 1000 if quick else 3000
    n_save = 101
    print(
        f"{'grid':>6} | {'plateau NI':>10} {'steps to 1.1x':>13} | {'flowax MP ms':>12} "
        f"{'NumPy MP ms':>11} {'NumPy/flowax':>12} | {'CP-MP ms to same NI':>19} "
        f"{'grid/CP-MP':>10}"
    )
    for g in (64, 512) if quick else (64, 512, 2048):
        grid = uniform(g)

        def grid_run(g0, observables=None, n_save=2):
            return games.mixed_nash(
                torus_f,
                g0,
                g0,
                method="mp",
                steps=steps,
                eta_weights=0.5,
                domain="torus",
                n_save=n_save,
                observables=observables,
            )

        run = jax.jit(lambda g0, grid_run=grid_run: grid_run(g0).final)
        c, s, _ = timed(lambda run=run, grid=grid: run(grid), 2)
        ni_g = np.asarray(grid_run(grid, {"ni": torus_ni}, n_save).values["ni"])
        plateau = ni_g[-1]
        k_g = _first_below(ni_g, 1.1 * plateau) * (steps // (n_save - 1))
        t_g = s * k_g / steps
        k = np.asarray(games.payoff_matrix(torus_f, grid.positions, grid.positions))
        t_np = min(_wall(lambda k=k: numpy_grid_mp(k, 0.5, steps)) for _ in range(2))
        k_cp = _first_below(ni_cp, plateau)
        t_cp = k_cp * per_step
        print(
            f"{g:>6} | {plateau:>10.2e} {k_g:>13} | {s * 1e3:>12.1f} {t_np * 1e3:>11.1f} "
            f"{t_np / s:>12.2f} | {t_cp * 1e3:>19.3f} {t_g / t_cp:>10.0f}"
        )
    print(
        "   (flowax/NumPy MP: the same 'steps' steps; grid/CP-MP: flowax grid MP's time to 1.1x"
        " its plateau over CP-MP's time to that NI; no grid reaches 1e-6)"
    )


def part2(quick):
    d = 16
    sizes = (256, 1024) if quick else (256, 1024, 2048)
    print(f"\n2. one CP-MP step, m = n particles per player on the torus [0, 1)^{d}")

    def f(x, y):
        return jnp.mean(jnp.cos(2 * jnp.pi * (x - y))) + 0.5 * jnp.mean(jnp.sin(2 * jnp.pi * x))

    eta_w, eta_x = 0.1, 0.01

    def np_step_broadcast(a, x, b, y):
        def fv(a, x, b, y):
            diff = 2 * np.pi * (x[:, None, :] - y[None, :, :])  # [m, n, d]
            k = np.cos(diff).mean(-1) + 0.5 * np.sin(2 * np.pi * x).mean(-1)[:, None]
            dk = -2 * np.pi * np.sin(diff) / d  # d K / d x_i (and -d K / d y_j)
            gx = np.einsum("ijk,j->ik", dk, b) + 0.5 * 2 * np.pi * np.cos(2 * np.pi * x) / d
            gy = -np.einsum("ijk,i->jk", dk, a)
            return k @ b, gx, k.T @ a, gy

        return _np_mp(fv, a, x, b, y)

    def np_step_matmul(a, x, b, y):
        def fv(a, x, b, y):
            cx, sx, cy, sy = (
                np.cos(2 * np.pi * x),
                np.sin(2 * np.pi * x),
                np.cos(2 * np.pi * y),
                np.sin(2 * np.pi * y),
            )
            k = (cx @ cy.T + sx @ sy.T) / d + 0.5 * sx.mean(-1)[:, None]
            # grad_x of sum_j b_j cos(2 pi (x - y_j)): -2 pi (sx (cy^T b) - cx (sy^T b)) / d
            gx = -2 * np.pi * (sx * (b @ cy) - cx * (b @ sy)) / d + np.pi * cx / d
            gy = 2 * np.pi * (sy * (a @ cx) - cy * (a @ sx)) / d
            return k @ b, gx, k.T @ a, -gy

        return _np_mp(fv, a, x, b, y)

    def _np_mp(fv, a, x, b, y):
        def update(w):
            vx, gx, vy, gy = fv(*w)
            la, lb = np.log(a) - eta_w * vx, np.log(b) + eta_w * vy
            la, lb = np.exp(la - la.max()), np.exp(lb - lb.max())
            return (la / la.sum(), (x - eta_x * gx) % 1.0, lb / lb.sum(), (y + eta_x * gy) % 1.0)

        return update(update((a, x, b, y)))

    def feats(x):
        t = 2 * jnp.pi * x
        return jnp.concatenate([jnp.cos(t), jnp.sin(t)])

    f_sep = games.separable(
        feats, feats, jnp.eye(2 * d) / d, x_term=lambda x: 0.5 * jnp.mean(jnp.sin(2 * jnp.pi * x))
    )
    print(
        f"{'m':>6} | {'flowax f s':>10} {'NumPy bcast s':>13} {'ratio':>6} | "
        f"{'flowax separable s':>18} {'NumPy matmul s':>14} {'ratio':>6} | {'compile s':>9}"
    )
    for m in sizes:
        kx, ky = jax.random.split(jax.random.key(m))
        mu = Particles(jnp.full(m, 1.0 / m), jax.random.uniform(kx, (m, d)))
        nu = Particles(jnp.full(m, 1.0 / m), jax.random.uniform(ky, (m, d)))
        outs, times = [], []
        for payoff in (f, f_sep):
            stepper = games.mixed_nash_step(
                payoff, method="cp_mp", eta_weights=eta_w, eta_positions=eta_x, domain="torus"
            )
            state = stepper.init((mu, nu))
            step = jax.jit(stepper.step)
            c, s, out = timed(lambda step=step, state=state: step(state), 5)
            outs.append(out)
            times.append((c, s))
        args = tuple(np.asarray(v) for v in (mu.weights, mu.positions, nu.weights, nu.positions))
        reps = 1 if m > 1024 else 2
        best_b = min(_wall(lambda: np_step_broadcast(*args)) for _ in range(reps))
        best_m = min(_wall(lambda: np_step_matmul(*args)) for _ in range(5))
        ref = np_step_matmul(*args)
        for out in outs:  # all four implementations take the same step
            err = float(np.max(np.abs(np.asarray(out.mu.positions) - ref[1])))
            assert err < 1e-9, err
        (c, s), (c2, s2) = times
        print(
            f"{m:>6} | {s:>10.4f} {best_b:>13.4f} {best_b / s:>6.1f} | {s2:>18.5f} "
            f"{best_m:>14.5f} {best_m / s2:>6.1f} | {c - s:>4.2f} {c2 - s2:>4.2f}"
        )


def _wall(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def part3(quick):
    from scipy.optimize import linprog

    k_size = 100 if quick else 400
    print(f"\n3. a random {k_size} x {k_size} finite game: mirror prox vs scipy.optimize.linprog")
    mat = np.random.default_rng(0).normal(size=(k_size, k_size))
    start = time.perf_counter()
    res = linprog(
        np.r_[np.zeros(k_size), 1.0],
        A_ub=np.c_[mat.T, -np.ones(k_size)],
        b_ub=np.zeros(k_size),
        A_eq=np.r_[np.ones(k_size), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * k_size + [(None, None)],
        method="highs",
    )
    t_lp = time.perf_counter() - start
    steps = 100000

    def run(mat, eye):  # arguments, not closed-over constants (XLA would constant-fold them)
        f, mu0, nu0 = games.finite_game(mat)
        traj = games.mixed_nash(
            f,
            mu0,
            nu0,
            method="mp",
            steps=steps,
            eta_weights=2.0,
            n_save=2,
            observables={
                "ni": lambda t, z: games.nikaido_isoda(f, *z, x_candidates=eye, y_candidates=eye)
            },
        )
        return traj.values["ni"][-1], games.payoff(f, *traj.final)

    jrun = jax.jit(run)
    c, s, (ni, value) = timed(lambda: jrun(jnp.asarray(mat), jnp.eye(k_size)), 1)
    print(
        f"linprog value {res.x[-1]:.8f} in {t_lp:.3f} s; mirror prox value {float(value):.8f}, "
        f"NI {float(ni):.2e} after {steps} steps (eta 2) in {s:.3f} s (compile {c - s:.2f} s): "
        f"{s / t_lp:.0f}x the LP's time"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    _ = TORUS_W
    part1(args.quick)
    part2(args.quick)
    part3(args.quick)


if __name__ == "__main__":
    main()
