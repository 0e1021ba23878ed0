"""Print the lowest versions pyproject.toml allows, as pip requirements (every `>=` as `==`).

    python .ci/lowest.py > lowest.txt && pip install -r lowest.txt

Only the runtime dependencies (`[project] dependencies`) are pinned; a dependency declared
without a `>=` floor is an error, so every floor the project states is one that CI installs.
"""

import re
import sys
import tomllib
from pathlib import Path


def lowest(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", dep)
        if match is None:
            raise SystemExit(f"{pyproject}: dependency {dep!r} has no plain `>=` floor.")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print("\n".join(lowest(root / "pyproject.toml")))
    sys.exit(0)
