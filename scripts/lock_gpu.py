"""`make lock-gpu`: requirements-gpu.lock from pip's resolution of `tensorflow[and-cuda]` on top of
requirements.lock (`pip install --dry-run --report`: the resolver reads the packages' metadata
and installs nothing, so the CUDA libraries' gigabytes are not downloaded).

    python scripts/lock_gpu.py REPORT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-gpu.lock"


def main(report: Path) -> None:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    locked = {canonicalize_name(line.partition("==")[0]) for line in lines if "==" in line}
    resolved = json.loads(report.read_text())["install"]
    added = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in resolved
        # pip's own tools come with --ignore-installed; they are no part of TensorFlow's
        if canonicalize_name(item["metadata"]["name"])
        not in locked | {"pip", "setuptools", "wheel"}
    )
    comments = [line for line in LOCK.read_text().splitlines() if line.startswith("#")]
    LOCK.write_text("\n".join(comments + added) + "\n")
    print(f"lock-gpu: wrote {len(added)} packages to {LOCK.name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
