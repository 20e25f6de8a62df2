"""`python -m mnist_dvc.registry` is mnist-release."""

import sys

from mnist_dvc.registry.cli import main

sys.exit(main())
