"""Where a sweep's chunks run: in this process (`Local`), or as Ray tasks (`linflow.sweep.Ray`)."""

import abc
from typing import TYPE_CHECKING

import equinox as eqx
import numpy as np


if TYPE_CHECKING:
    from ._sweep import Sweep


class AbstractBackend(eqx.Module):
    """Runs a sweep's unfinished chunks and stores each one as it finishes."""

    def check(self, sweep: "Sweep") -> None:
        """Refuse, at construction, a sweep this backend cannot run."""

    @abc.abstractmethod
    def run_chunks(self, sweep: "Sweep", chunks: list[np.ndarray]) -> None:
        """Compute and store every chunk (flat indices of one static combination each)."""


class Local(AbstractBackend):
    """Every chunk in this process, one after the other, on the sweep's `devices`; a tqdm
    progress bar counts points."""

    def run_chunks(self, sweep: "Sweep", chunks: list[np.ndarray]) -> None:
        from tqdm.auto import tqdm

        total = sum(c.size for c in chunks)
        path = sweep.path
        with tqdm(
            total=total,
            unit="pt",
            desc="/".join(path.parts[-2:]) if path is not None else "sweep",
            disable=sweep.quiet or total == 0,
            dynamic_ncols=True,
        ) as bar:
            for chunk in chunks:
                sweep.compute_chunk(chunk)
                bar.update(int(chunk.size))
