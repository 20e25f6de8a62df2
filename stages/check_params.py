"""Stage `check_params`: validate params.yaml as a file, whatever DVC can see of it.

DVC decides what is out of date by comparing param *values* to dvc.lock's, and for it `true`
equals 1 and 1.0 equals 1; a key that no stage lists is never compared at all. So a value every
stage would refuse could sit in the committed file while `dvc repro` says "up to date". This
stage depends on params.yaml's bytes: any edit reruns it, and a value the stages would refuse
fails `dvc repro` in the same one line they give. It writes nothing, so a comment or a
reformatted file reruns only this check (well under a second), never the model.
"""

from __future__ import annotations

from mnist_dvc.params import load_params
from mnist_dvc.paths import PARAMS


def main() -> None:
    load_params()
    print(f"check_params: {PARAMS} is valid")
