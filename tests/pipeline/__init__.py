"""The pipeline as users drive it, end to end: `dvc repro` in real git repositories, comparisons
across branches, remotes, interruptions and outputs that cannot be written."""
