"""A BBP transition in the Hessian at initialization: with enough data the most negative
curvature direction of a random initialization points to the teacher, and
overparametrization lowers the amount of data needed.

After Annesi, Bocchi and Cammarota (2026, "Overparametrization bends the landscape: BBP
transitions at initialization in simple neural networks"). Teacher: one quadratic unit (phase
retrieval), ``y = (w*.x)^2 / N``; student: ``p`` quadratic units, ``y_hat = (1/p) sum_k
(w_k.x)^2 / N`` (``p = 1`` is phase retrieval, ``p > 1`` overparametrized), inputs
``x ~ N(0, I_N)``, ``M = alpha N`` samples, loss ``(1/2) sum_mu (y_mu - y_hat_mu)^2 / (a + y_mu)``
with ``a = 1``. At a random initialization ``w_k ~ N(0, I_N)`` (independent of the teacher) the
Hessian is a random matrix whose sample-dependent part ``sum_mu c(y_mu) x_mu x_mu^T`` carries the
teacher through ``y``: past a critical ``alpha`` an eigenvalue leaves the bulk at its bottom
edge (a Baik-Ben Arous-Peche transition) and its eigenvector has a finite overlap with ``w*``,
so the initialization is informative (gradient descent then first falls along it). The paper
computes the transition for ``N -> infinity``; overparametrization moves it towards the
weak-recovery threshold ``alpha = 1/2`` of phase retrieval. Here ``N = 200``: finite-size
blurring turns the transition into a crossover.

Left: the spectral density of the Hessian at initialization by stochastic Lanczos quadrature
(`flowax.kernels.spectral_density`) for ``p = 1`` at three ``alpha``, with the four smallest
eigenvalues (Lanczos, `top_eigenpairs(which="smallest")`) marked: at ``alpha = 12`` the smallest
has left the bulk. Right: the overlap of the bottom eigenvector with the teacher,
``||V w*|| / ||w*||`` for the unit eigenvector ``V: [p, N]``, vs
``alpha`` for ``p = 1, 2, 4`` (mean and spread over 4 seeds, one `sweep` per ``p``), beside the
overlap ``1/sqrt(N)`` of a random direction.

Run:  python examples/bbp_at_initialization.py [--out bbp_at_initialization.png] [--quiet]
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics, kernels  # noqa: E402

N, A = 200, 1.0
ALPHAS = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0])
WIDTHS = (1, 2, 4)
SEEDS = 4
M_MAX = int(ALPHAS.max() * N)
SPECTRA = (1.0, 4.0, 12.0)


def problem(p, alpha, seed):
    """Data, teacher and a random initialization; samples beyond ``alpha N`` are masked out, so
    every ``alpha`` has the same shapes (one compilation per ``p``)."""
    kx, kt, kw = jax.random.split(jax.random.fold_in(jax.random.key(0), seed), 3)
    x = jax.random.normal(kx, (M_MAX, N))
    teacher = jax.random.normal(kt, (N,))
    y = (x @ teacher) ** 2 / N
    mask = jnp.arange(M_MAX) < alpha * N
    w0 = jax.random.normal(kw, (p, N))

    def loss(w):
        y_hat = jnp.mean((x @ w.T) ** 2, axis=1) / N
        return 0.5 * jnp.sum(jnp.where(mask, (y - y_hat) ** 2 / (A + y), 0.0))

    return loss, w0, teacher


def bottom(p):
    def run(point):
        loss, w0, teacher = problem(p, point["alpha"], point["seed"])
        eig = kernels.top_eigenpairs(
            loss, w0, k=1, num_iters=100, key=jax.random.key(1), which="smallest"
        )
        overlap = jnp.linalg.norm(eig.vectors[0] @ teacher) / jnp.linalg.norm(teacher)
        return eig.values[0], overlap, eig.converged

    return run


def main():
    args = parse_args(__doc__, "bbp_at_initialization.png")
    grid = dynamics.product_grid(alpha=ALPHAS, seed=np.arange(SEEDS))
    results, start = {}, time.perf_counter()
    with progress(len(WIDTHS) + len(SPECTRA), args, "runs") as bar:
        for p in WIDTHS:
            lam, overlap, ok = dynamics.sweep(bottom(p), grid, progress=False)
            if not bool(jnp.all(ok)):
                raise RuntimeError(f"p = {p}: Lanczos did not reach its tolerance")
            results[p] = (
                np.asarray(lam).reshape(len(ALPHAS), SEEDS),
                np.asarray(overlap).reshape(len(ALPHAS), SEEDS),
            )
            bar.update()
        spectra = {}
        for alpha in SPECTRA:
            loss, w0, _ = problem(1, alpha, 0)
            dens = kernels.spectral_density(
                loss, w0, key=jax.random.key(2), num_probes=16, num_iters=80
            )
            low = kernels.top_eigenpairs(
                loss, w0, k=4, num_iters=100, key=jax.random.key(1), which="smallest"
            )
            grid_x = jnp.linspace(-3.0, 12.0, 600)
            spectra[alpha] = (grid_x, dens.density(grid_x, sigma=0.15), np.asarray(low.values))
            bar.update()
    elapsed = time.perf_counter() - start

    print("overlap of the bottom Hessian eigenvector with the teacher (mean over 4 seeds)")
    print("alpha | " + " | ".join(f"p = {p}" for p in WIDTHS) + " | bottom eigenvalue, p = 1")
    for i, alpha in enumerate(ALPHAS):
        cells = " | ".join(f"{results[p][1][i].mean():5.2f}" for p in WIDTHS)
        print(f"{alpha:5.1f} | {cells} | {results[1][0][i].mean():8.3f}")
    print(f"random direction: {1 / np.sqrt(N):.2f}; total {elapsed:.1f} s")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for c, alpha in zip(("C0", "C1", "C2"), SPECTRA, strict=True):
        gx, d, low = spectra[alpha]
        ax.plot(np.asarray(gx), np.asarray(d), color=c, label=rf"$\alpha$ = {alpha:g}")
        tick = -0.004 * (1 + SPECTRA.index(alpha))
        ax.plot(low, np.full(low.shape, tick), "|", color=c, ms=10, mew=2)
    ax.set_xlabel("Hessian eigenvalue (p = 1; bottom of the spectrum)")
    ax.set_ylabel("spectral density (SLQ, smoothed)")
    ax.set_title("Hessian at initialization; ticks: 4 smallest eigenvalues")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    for c, p in zip(("C0", "C1", "C3"), WIDTHS, strict=True):
        ov = results[p][1]
        bx.plot(
            ALPHAS,
            ov.mean(1),
            "o-",
            color=c,
            label=f"p = {p}" + (" (phase retrieval)" if p == 1 else ""),
        )
        bx.fill_between(ALPHAS, ov.min(1), ov.max(1), color=c, alpha=0.2)
    bx.axhline(1 / np.sqrt(N), color="gray", ls="--", lw=1, label=r"random direction $1/\sqrt{N}$")
    bx.axvline(0.5, color="k", ls=":", lw=1, label=r"weak recovery $\alpha = 1/2$")
    bx.set_xscale("log")
    bx.set_xlabel(r"samples per dimension $\alpha = M/N$")
    bx.set_ylabel("overlap of the bottom eigenvector with the teacher")
    bx.set_title(f"Informative initialization: earlier with more units (N = {N})")
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
