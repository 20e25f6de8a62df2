"""mnist-verify: the work tree's results against the committed ones, as identical, equivalent
or different (usage and exit status: cli.py's docstring, which is also `mnist-verify --help`).

    reading.py  both sides' files, from git (HEAD) and from the work tree, as Results; the
                refusals (VerifyError), one line each
    verdict.py  the comparison and its thresholds, with the measurements that justify them
    cli.py      the arguments, the text and JSON output, the exit status

The names below are the ones other code and the tests use.
"""

from mnist_dvc.paths import PROVENANCE
from mnist_dvc.verify.cli import main
from mnist_dvc.verify.reading import NO_COMMITTED, NO_WORK, Results, VerifyError
from mnist_dvc.verify.verdict import ACCURACY_TOLERANCE, MIN_AGREEMENT, Verdict, compare

__all__ = [
    "ACCURACY_TOLERANCE",
    "MIN_AGREEMENT",
    "NO_COMMITTED",
    "NO_WORK",
    "PROVENANCE",
    "Results",
    "Verdict",
    "VerifyError",
    "compare",
    "main",
]
