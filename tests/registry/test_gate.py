"""The promotion gate on its own (fast): metrics.json at two commits of a real git repository,
compared metric by metric against the seed spread. (tests/registry/test_registry.py runs it
through `make promote` on two trained versions.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnist_dvc.registry.checks import Refused, check_no_regression
from mnist_dvc.seed_study import SEED_SPREAD
from tests.helpers import sh

PROD = {"accuracy": 0.9904, "loss": 0.03, "ood_accuracy": 0.9382}


@pytest.fixture
def commit_metrics(tmp_path):
    sh("git", "init", "-q", "-b", "main", cwd=tmp_path)

    def commit(metrics: dict | str) -> str:
        text = metrics if isinstance(metrics, str) else json.dumps(metrics)
        (tmp_path / "metrics.json").write_text(text)
        sh("git", "add", "metrics.json", cwd=tmp_path)
        sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m", cwd=tmp_path)
        return sh("git", "rev-parse", "HEAD", cwd=tmp_path).stdout.strip()

    return tmp_path, commit


def gate(root: Path, new: str, prod: str) -> None:
    check_no_regression(root, "v2.0.0", new, ("v1.0.0", prod))


@pytest.mark.parametrize("metric", sorted(SEED_SPREAD))
def test_a_fall_beyond_the_seed_spread_is_refused_naming_the_metric(commit_metrics, metric):
    root, commit = commit_metrics
    prod = commit(PROD)
    worse = commit({**PROD, metric: PROD[metric] - SEED_SPREAD[metric] - 0.0005})
    with pytest.raises(Refused, match=rf"v2.0.0 scores {metric} .* below prod's v1.0.0"):
        gate(root, worse, prod)


def test_within_the_spread_or_better_passes(commit_metrics):
    root, commit = commit_metrics
    prod = commit(PROD)
    gate(root, commit({k: v - SEED_SPREAD.get(k, 0) + 1e-6 for k, v in PROD.items()}), prod)
    gate(root, commit({**PROD, "accuracy": 0.995, "ood_accuracy": 0.97}), prod)


def test_a_metric_prod_lacks_is_not_compared_one_the_candidate_lacks_is_refused(commit_metrics):
    """A prod model from before the out-of-distribution score; a candidate with no score."""
    root, commit = commit_metrics
    prod = commit({"accuracy": 0.99})
    gate(root, commit({"accuracy": 0.99, "ood_accuracy": 0.5}), prod)
    for unscored in ({"loss": 0.1}, {"accuracy": 1.5}, {"accuracy": True}):
        with pytest.raises(Refused, match=r"has no accuracy \(a number from 0 to 1\)"):
            gate(root, commit(json.dumps(unscored)), prod)
    with pytest.raises(Refused, match="NaN is not a number JSON allows"):
        gate(root, commit(json.dumps({"accuracy": float("nan")})), prod)


@pytest.mark.parametrize("damaged", ["not json", "[0.99]"])
def test_unreadable_metrics_on_either_side_are_refused(commit_metrics, damaged):
    root, commit = commit_metrics
    good, bad = commit(PROD), commit(damaged)
    with pytest.raises(Refused, match=r"prod's v1\.0\.0: metrics\.json"):
        gate(root, good, bad)
    with pytest.raises(Refused, match=r"v2\.0\.0's metrics\.json"):
        gate(root, bad, good)
