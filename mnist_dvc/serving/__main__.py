"""`python -m mnist_dvc.serving`: the same as the mnist-serve console script."""

import sys

from mnist_dvc.serving.cli import main

sys.exit(main())
