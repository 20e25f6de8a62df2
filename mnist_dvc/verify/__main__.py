"""`python -m mnist_dvc.verify`: the same as the mnist-verify console script."""

import sys

from mnist_dvc.verify.cli import main

sys.exit(main())
