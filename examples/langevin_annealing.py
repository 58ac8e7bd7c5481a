"""Mean-field Langevin dynamics: annealing on a double well, and a signed neuron by bilevel MFLD.

Left: particles of mu under MFLD dX = -grad V(X) dt + sqrt(2 T(t)) dB on the tilted double well
V(x) = (x^2 - 1)^2 + 0.3 x, at a fixed temperature T = 0.5 and with two annealing schedules
(logarithmic, T0 / log(e + t), and fast, T0 / (1 + t)); middle: where the particles end, against
the Gibbs density at T = 0.5. Right: a signed target y = -relu(<u, z>) learned by MFLD on the
bilevel objective (hidden neurons are the particles; the signed output weights solve an inner
ridge problem exactly; Wang, Mousavi-Hosseini and Chizat 2024), for two temperatures.

Run:  python examples/langevin_annealing.py [--out langevin_annealing.png]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import parse_args, progress  # noqa: E402
from flowax import dynamics
from flowax.dynamics.measures import Particles


def well(x):
    return (x[0] ** 2 - 1.0) ** 2 + 0.3 * x[0]


def main():
    args = parse_args(__doc__, "langevin_annealing.png")

    m, t0 = 4000, 0.5
    energy = dynamics.measures.potential_energy(well)
    p0 = Particles(jnp.full(m, 1.0 / m), 0.3 * jax.random.normal(jax.random.key(0), (m, 1)) + 1)
    temperatures = {
        "fixed T = 0.5": t0,
        "log annealing T0/log(e+t)": dynamics.measures.log_annealing(t0),
        "fast annealing T0/(1+t)": lambda t: t0 / (1.0 + t),
    }
    runs = {}
    with progress(len(temperatures) + 2, args, "runs") as bar:
        for name, temp in temperatures.items():
            runs[name] = dynamics.measures.mean_field_langevin(
                energy, p0, temperature=temp, lr=0.01, steps=5000, key=jax.random.key(1), n_save=201
            )
            bar.update()

        z = jax.random.normal(jax.random.key(2), (256, 4))
        u = jnp.array([1.0, 0.0, 0.0, 0.0])
        y = -jax.nn.relu(z @ u)
        risk = dynamics.measures.bilevel_two_layer_risk(z, y, reg=1e-3)
        b0 = Particles(jnp.full(64, 1 / 64), jax.random.normal(jax.random.key(3), (64, 4)))
        signed = {}
        for temp in (1e-5, 1e-3):
            signed[temp] = dynamics.measures.mean_field_langevin(
                risk, b0, temperature=temp, lr=0.5, steps=2000, key=jax.random.key(4), n_save=201
            )
            bar.update()

    print(
        f"{'double well, ' + str(m) + ' particles':<34} {'final mean energy':>18} "
        f"{'in the deep well':>17}"
    )
    for name, traj in runs.items():
        x = np.asarray(traj.final.positions[:, 0])
        print(f"{name:<34} {float(traj.values['objective'][-1]):18.4f} {np.mean(x < 0):17.1%}")
    print(f"\n{'signed neuron, bilevel MFLD':<34} {'initial risk':>18} {'final risk':>17}")
    for temp, traj in signed.items():
        v = np.asarray(traj.values["objective"])
        print(f"{'T = ' + format(temp, '.0e'):<34} {v[0]:18.3e} {v[-1]:17.3e}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
    for name, traj in runs.items():
        axes[0].semilogx(np.asarray(traj.ts)[1:], traj.values["objective"][1:], lw=2, label=name)
    axes[0].axhline(float(well(jnp.array([-1.04]))), color="k", ls=":", lw=1, label="min V")
    axes[0].set(
        xlabel="time t", ylabel="mean energy  int V dmu", title="MFLD on a double well: annealing"
    )
    axes[0].legend(fontsize=8)
    xs = np.linspace(-2, 2, 400)
    vx = (xs**2 - 1) ** 2 + 0.3 * xs
    gibbs = np.exp(-vx / t0)
    gibbs /= np.trapezoid(gibbs, xs)
    axes[1].plot(xs, gibbs, "k", lw=2, label="Gibbs density, T = 0.5")
    for name, traj in runs.items():
        axes[1].hist(
            np.asarray(traj.final.positions[:, 0]),
            bins=80,
            range=(-2, 2),
            density=True,
            alpha=0.45,
            label=name,
        )
    axes[1].set(xlabel="x", ylabel="density", title="Particles at t = 50")
    axes[1].legend(fontsize=8)
    for temp, traj in signed.items():
        axes[2].loglog(
            np.asarray(traj.ts)[1:],
            traj.values["objective"][1:],
            lw=2,
            label=f"bilevel MFLD, T = {temp:.0e}",
        )
    axes[2].set(
        xlabel="time t", ylabel="risk G(mu)", title="Signed target -relu(<u, z>), 64 neurons"
    )
    axes[2].legend(fontsize=8)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
