"""`python -m mnist_dvc.sweep` is mnist-sweep."""

import sys

from mnist_dvc.sweep.cli import main

sys.exit(main())
