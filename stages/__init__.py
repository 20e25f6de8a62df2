"""The pipeline's stages, one module each, run by dvc.yaml as `python -m stages.<name>`.

Before a stage module loads, the interpreter is checked against requirements.lock and signals
are made to end the stage in one line (mnist_dvc/stage.py).
"""

from pathlib import Path

from mnist_dvc.stage import begin

begin(lock=Path(__file__).resolve().parent.parent / "requirements.lock")
