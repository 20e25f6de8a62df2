"""The pipeline's stages, one module each, run by dvc.yaml as `python -m stages.<name>`.

When a stage runs, and before its module loads, the interpreter is checked against
requirements.lock, TensorFlow's numerics are chosen and signals are made to end the stage in one
line (mnist_dvc/stage.py). Importing a stage module from elsewhere does none of this.
"""

from pathlib import Path

from mnist_dvc.stage import begin, run_as_stage

if run_as_stage():
    begin(lock=Path(__file__).resolve().parent.parent / "requirements.lock")
