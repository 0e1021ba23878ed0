"""On-disk layout of a sweep: one `.npz` per finished chunk, written atomically, no pickle.

```
path/
  sweep.json               # grid description + hash, seed, library version, run function
  chunk-<hash>.npz         # one per finished chunk
```

A chunk file holds `index` (flat grid indices), `coord:<axis>`, `metric:<name>`, `status`
and `meta` (a JSON string: library version, grid hash, seed, wall time). Every file is
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


def write_manifest(path: Path, manifest: dict) -> None:
    """Create `path/sweep.json`, or check that the one there describes the same sweep."""
    path.mkdir(parents=True, exist_ok=True)
    file = path / MANIFEST
    if file.exists():
        old = json.loads(file.read_text())
        if old.get("grid_hash") != manifest["grid_hash"]:
            raise ValueError(
                f"{str(path)!r} holds results of a different sweep (grid hash "
                f"{old.get('grid_hash')} != {manifest['grid_hash']}: the grid, static axes or "
                "seed changed). Use another `path`, or delete the old results."
            )
        if old.get("version") != manifest["version"]:
            warnings.warn(
                f"{str(path)!r} was started with linflow {old.get('version')}; resuming with "
                f"{manifest['version']}. Finished chunks are kept.",
                stacklevel=3,
            )
        return
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    _atomic_write(file, lambda f: f.write(text))


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


def read_chunks(path: Path, grid_hash: str) -> list[dict]:
    """Every finished chunk under `path` whose grid hash matches (others raise)."""
    out = []
    if not path.exists():
        return out
    for file in sorted(path.glob("chunk-*.npz")):
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("grid_hash") != grid_hash:
                raise ValueError(
                    f"{str(file)!r} belongs to a different sweep (grid hash "
                    f"{meta.get('grid_hash')} != {grid_hash})."
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
