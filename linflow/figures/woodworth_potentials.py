"""Woodworth et al. 2020, Fig. 2 and Fig. 3(a-b): the potentials q, r, q_D and the ratio
Q^D_alpha(e_1) / Q^D_alpha(1/sqrt d) that tracks the l2 -> l1 transition.

No flows: pure evaluations of `linflow.limits.q_depth` / `sparse_dense_ratio`.
"""

from pathlib import Path

import numpy as np

from linflow.limits import q_depth, sparse_dense_ratio

from ._common import finish, logger, panel_status


def r_potential(z):
    """Fig. 2's r(z): the unique real root of u^4 - 6u^3 + (12-2z^2)u^2 - (8+10z^2)u + z^2 + z^4
    (the parameter-space distance potential, Woodworth et al. Sec. 4)."""
    out = []
    for zz in np.atleast_1d(z):
        roots = np.roots([1, -6, 12 - 2 * zz**2, -(8 + 10 * zz**2), zz**2 + zz**4])
        real = roots[np.abs(roots.imag) < 1e-7 * max(1.0, np.abs(roots).max())].real
        out.append(real.min() if real.size else np.nan)
    return np.array(out)


def run(*, quick: bool = False, out: str | Path = ".", quiet: bool = False) -> dict:
    """Run the figure; write `woodworth_potentials.png` under `out`; return the results."""
    import matplotlib.pyplot as plt

    print = logger(quiet)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = 100
    z = np.linspace(-4, 4, 81 if quick else 401)
    alphas = np.logspace(-6, 2, 30 if quick else 200)
    depths = [2, 3, 4, 5]
    q = {D: q_depth(z, D) for D in depths}
    ratio = {D: sparse_dense_ratio(alphas, d, D) for D in depths}
    r = r_potential(z)
    # Where each depth's ratio crosses the midpoint between l1 (1/sqrt d) and l2 (1).
    mid = 0.5 * (1 + 1 / np.sqrt(d))
    crossing = {}
    for D in depths:
        idx = np.argmax(ratio[D] > mid)
        crossing[D] = float(alphas[idx])
        print(f"D={D}: ratio crosses {mid:.3f} at alpha ~ {alphas[idx]:.3g}")
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].plot(z, q[2], label="q(z)")
    ax[0].plot(z, r, "--", label="r(z)")
    ax[0].set_title("Fig. 2: q and r")
    ax[0].legend()
    for D in depths:
        ax[1].plot(z, q[D], label=f"D={D}")
        ax[2].semilogx(alphas, ratio[D], label=f"D={D}")
    ax[1].set_title("Fig. 3(a): $q_D$")
    ax[1].legend()
    ax[2].axhline(1 / np.sqrt(d), ls=":", c="k")
    ax[2].set_title(r"Fig. 3(b): $Q^D_\alpha(e_1)/Q^D_\alpha(\mathbf{1}/\sqrt{d})$, d=100")
    ax[2].set_xlabel(r"$\alpha$")
    ax[2].legend()
    results = {
        "d": d,
        "z": z.tolist(),
        "alphas": alphas.tolist(),
        "q": {str(D): q[D].tolist() for D in depths},
        "r": r.tolist(),
        "ratio": {str(D): ratio[D].tolist() for D in depths},
        "midpoint_crossing_alpha": {str(D): crossing[D] for D in depths},
    }
    fig.savefig(out / "woodworth_potentials.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    results["pngs"] = ["woodworth_potentials.png"]
    results["panels"] = {
        a.get_title() or f"panel {i + 1}": panel_status(a)
        for i, a in enumerate(fig.axes)
        if a.get_label() != "<colorbar>"
    }
    return results


def reproduce(
    *, quick: bool = False, out: str | Path = "results/woodworth_potentials", quiet: bool = False
):
    """`linflow reproduce`: this figure under `out`."""
    return finish("woodworth_potentials", run(quick=quick, out=out, quiet=quiet), Path(out), quick)
