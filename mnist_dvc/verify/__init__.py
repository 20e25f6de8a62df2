"""mnist-verify: the work tree's results against the committed ones, as identical, equivalent
or different (usage and exit status: cli.py's docstring, which is also `mnist-verify --help`).

    results.py    one side's results parsed from its files (Results); the refusals
                  (VerifyError), one line each
    committed.py  HEAD's results, from git alone
    work_tree.py  the work tree's, refused unless `dvc status` would call them up to date
    verdict.py    the comparison and its thresholds
    cli.py        the arguments, the text and JSON output, the exit status

The names below are the ones other code and the tests use.
"""

from mnist_dvc.paths import PROVENANCE
from mnist_dvc.verify.cli import main
from mnist_dvc.verify.committed import NO_COMMITTED
from mnist_dvc.verify.results import Results, VerifyError
from mnist_dvc.verify.verdict import ACCURACY_TOLERANCE, MIN_AGREEMENT, Verdict, compare
from mnist_dvc.verify.work_tree import NO_WORK

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
