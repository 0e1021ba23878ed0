"""On-disk layout of a sweep: one `.npz` per finished chunk, written atomically, no pickle.

```
path/
  sweep.json               # identity: grid + hash, seed, library version, run fingerprint
  chunk-<hash>.npz         # one per finished chunk
```

A chunk file holds `index` (flat grid indices), `coord:<axis>`, `metric:<name>`, `status`
and `meta` (a JSON string: the sweep's identity, wall time, mode, devices). Every file is
written to a temporary name in the same directory and moved into place with `os.replace`,
so a killed run leaves either a complete chunk or none.
"""

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np


MANIFEST = "sweep.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are shared files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class SweepMismatchError(ValueError):
    """Results under a sweep's `path` were computed by a different sweep: another grid or
    seed, another library version, or a run function that computes something else."""


_PARTS = (
    ("grid_hash", "the grid, its static axes or the seed changed"),
    ("version", "they were computed with another linflow version"),
    (
        "run_fingerprint",
        "the run function computes something else (its body, the data it closes over or the "
        "dtypes changed)",
    ),
)


def mismatch(old: dict, new: dict) -> list[str]:
    """What differs between two sweep identities (empty if they are the same sweep)."""
    return [
        f"{why} ({key} {old.get(key)} != {new[key]})"
        for key, why in _PARTS
        if old.get(key) != new[key]
    ]


def write_manifest(path: Path, manifest: dict, *, overwrite: bool = False) -> int:
    """Create `path/sweep.json`, or check that the one there describes the same sweep.

    A different sweep is refused (`SweepMismatchError`); with `overwrite`, its chunks are
    deleted and the manifest replaced. Returns the number of chunk files deleted.
    """
    path.mkdir(parents=True, exist_ok=True)
    file = path / MANIFEST
    removed = 0
    if file.exists():
        old = json.loads(file.read_text())
        differs = mismatch(old, manifest)
        if not differs:
            return 0
        if not overwrite:
            raise SweepMismatchError(
                f"{str(path)!r} holds results of a different sweep: " + "; ".join(differs) + ". "
                "They are not mixed with new ones: use another `path`, or pass "
                '`on_mismatch="overwrite"` to delete them and compute again.'
            )
        for chunk in path.glob("chunk-*.npz"):
            chunk.unlink(missing_ok=True)
            removed += 1
        warnings.warn(
            f"{str(path)!r}: deleted {removed} chunk files of a different sweep ("
            + "; ".join(differs)
            + ").",
            stacklevel=3,
        )
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    _atomic_write(file, lambda f: f.write(text))
    return removed


def read_manifest(path: Path) -> dict | None:
    file = path / MANIFEST
    return json.loads(file.read_text()) if file.exists() else None


def chunk_name(flat: np.ndarray) -> str:
    digest = hashlib.sha1(np.asarray(flat, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"chunk-{digest}.npz"


def write_chunk(
    path: Path,
    flat: np.ndarray,
    coords: dict[str, np.ndarray],
    metrics: dict[str, np.ndarray],
    status: np.ndarray,
    meta: dict,
) -> Path:
    arrays = {"index": np.asarray(flat, dtype=np.int64), "status": np.asarray(status, dtype=str)}
    arrays.update({f"coord:{k}": np.asarray(v) for k, v in coords.items()})
    arrays.update({f"metric:{k}": np.asarray(v) for k, v in metrics.items()})
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"sweep column {k!r} has dtype object, which cannot be stored.")
    file = path / chunk_name(flat)
    _atomic_write(file, lambda f: np.savez(f, **arrays))
    return file


def read_chunks(path: Path, identity: dict) -> list[dict]:
    """Every finished chunk under `path`; one written by a different sweep (grid, seed,
    version or run fingerprint, see `mismatch`) raises `SweepMismatchError`."""
    out = []
    if not path.exists():
        return out
    for file in sorted(path.glob("chunk-*.npz")):
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            differs = mismatch(meta, identity)
            if differs:
                raise SweepMismatchError(
                    f"{str(file)!r} belongs to a different sweep: " + "; ".join(differs) + "."
                )
            chunk = {
                "file": file,
                "index": data["index"],
                "status": data["status"],
                "coords": {k[6:]: data[k] for k in data.files if k.startswith("coord:")},
                "metrics": {k[7:]: data[k] for k in data.files if k.startswith("metric:")},
                "meta": meta,
            }
        out.append(chunk)
    return out
