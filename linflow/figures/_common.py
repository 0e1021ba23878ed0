"""What the paper figures share: gradient descent recorded like a flow, quiet logging, and the
summary `linflow reproduce` prints."""

import json
import time
from pathlib import Path

import numpy as np


def gd_record(model, problem, lr, steps, record_every):
    """Plain GD (`linflow.gd`) on `problem` from `model`, saving every `record_every` steps;
    returns the `FlowSolution` (losses at the saved steps, the first at step 0, the last at
    `steps`) and the wall time of the call (compilation included, as for the flows the
    figures time)."""
    import jax

    from .. import gd

    t0 = time.perf_counter()
    sol = gd(model, problem, lr, steps=steps, save_steps=range(0, steps + 1, record_every))
    jax.block_until_ready(sol.losses)
    return sol, time.perf_counter() - t0


def logger(quiet: bool):
    """`print`, or nothing when `quiet`."""
    return (lambda *args, **kwargs: None) if quiet else print


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(type(x))


def save_json(path, payload) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=_jsonable)


def finish(figure: str, results: dict, out: Path, quick: bool) -> dict:
    """Write `out/<figure>.json` (the results with the figure, mode and library version) and
    return the summary `linflow reproduce` prints: files, and each panel drawn or why not."""
    from .. import __version__

    out = Path(out)
    path = out / f"{figure}.json"
    header = {"figure": figure, "mode": "quick" if quick else "full", "version": __version__}
    save_json(path, {**header, **results})
    panels = results.get("panels", {})
    return {
        **header,
        "files": [str(path), *(str(out / p) for p in results.get("pngs", []))],
        "panels": panels,
        "all_panels_drawn": all(v == "drawn" for v in panels.values()) and bool(panels),
    }


def panel_status(ax, why_empty: str = "no data drawn") -> str:
    """`"drawn"` if the matplotlib axes holds finite data, else `"empty: <why>"`."""
    for artist in [*ax.lines, *ax.collections, *ax.images, *ax.patches]:
        data = None
        if hasattr(artist, "get_ydata"):
            data = np.asarray(artist.get_ydata(), float)
        elif hasattr(artist, "get_array") and artist.get_array() is not None:
            data = np.ma.filled(np.asarray(artist.get_array(), float), np.nan)
        elif hasattr(artist, "get_offsets"):
            data = np.asarray(artist.get_offsets(), float)
        elif hasattr(artist, "get_height"):
            data = np.asarray([artist.get_height()], float)
        if data is not None and data.size and np.any(np.isfinite(data)):
            return "drawn"
    return f"empty: {why_empty}"
