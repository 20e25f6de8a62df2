"""mnist-verify on small real git repositories: committed results, then a work tree changed as
a rerun on another machine, with another seed, a damaged or a foreign model would change it.
No TensorFlow and no training: the files are written as the pipeline would write them."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mnist_dvc import verify
from mnist_dvc.seed_study import SEED_SPREAD
from tests.helpers import REPO_ROOT, sh

MNIST_VERIFY = Path(sys.executable).parent / "mnist-verify"
IMAGES = 10_000
COMMITTED_ERRORS = 90  # 0.9910, as the committed model scores
PREPARED = "08edf31e30dd07fedafba0b95b971d3f.dir"
# Only git's own settings: no user's config (signing, hooks) changes what the tests see.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
PROVENANCE = {
    "numerics": "portable",
    "cpu": {
        "machine": "x86_64",
        "model": "AMD EPYC",
        "flags": ["avx2", "avx512_vnni", "avx512f", "fma"],
    },
    "environment": {
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "TF_NUM_INTRAOP_THREADS": "2",
    },
    "threads": {"intra_op": 2, "inter_op": 2},
    "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"},
}
DVC_YAML = "stages:\n" + "".join(
    f"  {stage}:\n    cmd: python -m stages {stage}\n"
    for stage in ("fetch", "preprocess", "train", "evaluate", "report", "export")
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, capture_output=True, text=True, check=True
    ).stdout


def strict_json(text: str) -> Any:
    """JSON as the standard says it: NaN and the infinities are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def with_param(params: dict, dotted: str, value: Any) -> dict:
    """A copy of `params` with the value at a dotted key replaced."""
    changed = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = changed
    for key in parents:
        node = node[key]
    node[last] = value
    return changed


@dataclass(frozen=True)
class Run:
    """What one `dvc repro` leaves in a work tree: the files mnist-verify reads and a dvc.lock
    that records their md5s (of the others, made-up ones that change with the model)."""

    params: dict
    predicted: np.ndarray
    model: bytes = b"the committed model.h5"
    provenance: dict | None = field(default_factory=lambda: copy.deepcopy(PROVENANCE))
    data: str = PREPARED
    export_run: int = 0  # other export bytes (a foreign export)
    ood_accuracy: float | None = None  # metrics.json's out-of-distribution score, if any

    def write(self, repo: Path, actual: np.ndarray) -> None:
        (repo / "models").mkdir(exist_ok=True)
        (repo / "reports").mkdir(exist_ok=True)
        (repo / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))
        (repo / "models" / "model.h5").write_bytes(self.model)
        accuracy = float(np.mean(actual == self.predicted))
        scores = {"accuracy": round(accuracy, 6), "loss": 0.03}
        if self.ood_accuracy is not None:
            scores |= {"ood_accuracy": self.ood_accuracy, "ood_loss": 0.2}
        metrics = json.dumps(scores).encode()
        (repo / "metrics.json").write_bytes(metrics)
        rows = "".join(f"{a},{p}\n" for a, p in zip(actual, self.predicted, strict=True))
        predictions = f"actual,predicted\n{rows}".encode()
        (repo / "reports" / "predictions.csv").write_bytes(predictions)
        provenance_path = repo / "models" / "provenance.json"
        train_outs = {"models/model.json": md5(b"model.json"), "models/model.h5": md5(self.model)}
        if self.provenance is None:
            provenance_path.unlink(missing_ok=True)
        else:
            recorded = {"model_h5_md5": md5(self.model), **self.provenance}
            provenance_path.write_text(json.dumps(recorded, indent=2) + "\n")
            train_outs[str(verify.PROVENANCE)] = md5(provenance_path.read_bytes())
        train_outs["dvclive"] = md5(b"dvclive" + self.model) + ".dir"
        model = {"models/model.h5": md5(self.model)}
        stages = {
            "fetch": ({}, {"data/raw": "d0193be11ab497254ec667a4864050d9.dir"}),
            "preprocess": (
                {"data/raw": "d0193be11ab497254ec667a4864050d9.dir"},
                {"data/prepared": self.data},
            ),
            "train": ({"data/prepared": self.data}, train_outs),
            "evaluate": (
                {"data/prepared": self.data, **model},
                {
                    "metrics.json": md5(metrics),
                    "reports/per_digit.json": md5(b"per digit" + predictions),
                    "reports/predictions.csv": md5(predictions),
                },
            ),
            "report": (
                {"metrics.json": md5(metrics), **model},
                {"reports/model.md": md5(b"card" + metrics)},
            ),
            "export": (
                model,
                {
                    "models/model.onnx": md5(b"onnx%d" % self.export_run + self.model),
                    "models/saved_model": md5(b"sm%d" % self.export_run + self.model) + ".dir",
                    "reports/exports.json": md5(b"exports.json"),
                },
            ),
        }
        # The params each stage ran with, as DVC records the sections dvc.yaml lists.
        listed = {"preprocess": ["preprocess"], "train": ["numerics", "train"],
                  "evaluate": ["evaluate", "numerics"], "report": ["train"]}  # fmt: skip
        lock = {
            "schema": "2.0",
            "stages": {
                name: {
                    "cmd": f"python -m stages {name}",
                    "deps": [{"path": p, "hash": "md5", "md5": m} for p, m in deps.items()],
                    **(
                        {"params": {"params.yaml": {k: self.params[k] for k in listed[name]}}}
                        if name in listed
                        else {}
                    ),
                    "outs": [{"path": p, "hash": "md5", "md5": m} for p, m in outs.items()],
                }
                for name, (deps, outs) in stages.items()
            },
        }
        (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


@dataclass
class Project:
    """A git repository whose HEAD holds the committed results (`committed`); tests change its
    work tree with `write` and ask mnist-verify with `verify` (in this process: fast)."""

    repo: Path
    actual: np.ndarray
    committed: Run

    def write(self, run: Run) -> None:
        run.write(self.repo, self.actual)

    def rerun(self, changed: int = 0, errors: int = COMMITTED_ERRORS, **changes: Any) -> Run:
        """The committed run with a prediction changed on `changed` images, `errors` test images
        wrong in all (0.9910 as committed by default), and `changes` to the Run."""
        predicted = vary(self.committed.predicted, self.actual, changed, errors)
        return replace(self.committed, predicted=predicted, **changes)

    def verify(self, *args: str) -> tuple[int, str, str]:
        return verify_in(self.repo, *args)


def verify_in(repo: Path, *args: str) -> tuple[int, str, str]:
    """mnist-verify's exit status, stdout and stderr for `repo`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = verify.main(["--repo", str(repo), *args])
    return status, out.getvalue(), err.getvalue()


def vary(predicted: np.ndarray, actual: np.ndarray, changed: int, errors: int) -> np.ndarray:
    """Other predictions on exactly `changed` images, `errors` of all wrong: some committed
    errors fixed, some right answers broken, and (for parity) one wrong answer made another
    wrong one."""
    wrong, right = np.flatnonzero(predicted != actual), np.flatnonzero(predicted == actual)
    surplus = len(wrong) - errors  # fixed - broken
    swapped = (changed - surplus) % 2
    fixed, broken = (changed - swapped + surplus) // 2, (changed - swapped - surplus) // 2
    assert min(fixed, broken) >= 0 and fixed + swapped <= len(wrong), "not possible"
    result = predicted.copy()
    result[wrong[:fixed]] = actual[wrong[:fixed]]
    result[right[:broken]] = (actual[right[:broken]] + 1) % 10
    for i in wrong[fixed : fixed + swapped]:
        result[i] = next(d for d in range(10) if d not in (actual[i], predicted[i]))
    return result


@pytest.fixture
def project(tmp_path) -> Project:
    """A repository as `dvc repro` and a commit leave it: 6 stages, 10,000 test predictions
    (0.9910 accurate), the committed params.yaml, a model.h5 and its provenance."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / ".gitignore").write_text("/models/model.h5\n")  # DVC's, not git's
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 10, IMAGES)
    predicted = actual.copy()
    predicted[rng.choice(IMAGES, COMMITTED_ERRORS, replace=False)] += 1
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for key, value in {"numerics": "portable", "train.seed": 42, "train.epochs": 12}.items():
        params = with_param(params, key, value)  # what the assertions say was committed
    committed = Run(params, predicted % 10)
    committed.write(repo, actual)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")
    return Project(repo, actual, committed)


def mnist_verify(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it, in `repo`: for the end-to-end check after a real
    `dvc repro`, `strict_json(mnist_verify(repo, "--json").stdout)` is its verdict."""
    return subprocess.run(
        [str(MNIST_VERIFY), *args], cwd=repo, capture_output=True, text=True, timeout=300
    )


# -------------------------------------------------------------------------------- the verdicts


def test_identical_after_no_change(project):
    status, out, err = project.verify()
    assert (status, err) == (0, "")
    model = md5(project.committed.model)
    assert out == (
        "identical: every output of the 6 stages has the committed bytes "
        f"(models/model.h5 md5 {model[:8]}...)\n"
    )


def test_changed_export_bytes_are_not_identical(project):
    """The exports are byte-stable (mnist_dvc/export.py): other bytes are a real change."""
    project.write(replace(project.committed, export_run=1))
    status, out, _ = project.verify()
    assert status == 0
    assert out.startswith("equivalent: ")


def test_identical_needs_the_committed_bytes_of_every_other_output(project):
    rerun = replace(project.committed, provenance={**PROVENANCE, "numerics": "native"})
    project.write(rerun)  # model.h5 the same, its provenance not
    status, out, _ = project.verify()
    assert status == 0
    assert out.startswith("equivalent: ")
    assert out.rstrip().endswith(
        "made differently: numerics native (committed portable); models/model.h5 has the "
        "committed bytes, but not models/provenance.json"
    )


def test_a_new_output_is_not_identical(project):
    """A dvc.yaml with a new output (here: the provenance), run on the committed code."""
    (project.repo / "models" / "provenance.json").unlink()
    git(project.repo, "rm", "-q", "--cached", "models/provenance.json")
    lock = yaml.safe_load((project.repo / "dvc.lock").read_text())
    outs = lock["stages"]["train"]["outs"]
    outs[:] = [out for out in outs if out["path"] != "models/provenance.json"]
    (project.repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    git(project.repo, "commit", "-qam", "results before provenance")
    project.write(project.committed)
    status, out, _ = project.verify("--json")
    verdict = strict_json(out)
    assert (status, verdict["verdict"]) == (0, "equivalent")
    assert verdict["outputs_differ"] == ["models/provenance.json (new)"]
    assert verdict["summary"].endswith(
        "same digit on 100.00% of 10000 test images; made differently: no provenance recorded "
        "for HEAD's model.h5; models/model.h5 has the committed bytes, but not "
        "models/provenance.json (new)"
    )


def test_equivalent_on_other_numerics_and_cpu(project):
    provenance = with_param(PROVENANCE, "numerics", "native")
    provenance["cpu"]["flags"] = [*PROVENANCE["cpu"]["flags"], "avx512_bf16"]
    provenance["threads"]["intra_op"] = 4
    rerun = project.rerun(
        changed=20,
        errors=92,
        model=b"another model.h5",
        params=with_param(project.committed.params, "numerics", "native"),
        provenance=provenance,
    )
    project.write(rerun)
    status, out, err = project.verify()
    assert (status, err) == (0, "")
    assert out == (
        "equivalent: test accuracy 0.9908 (committed 0.9910, within 0.0030), same digit on "
        "99.80% of 10000 test images; made differently: numerics native (committed portable), "
        "cpu flags +avx512_bf16, threads intra_op 4 (committed 2)\n"
    )


def test_equivalent_after_another_seed(project):
    seed = with_param(project.committed.params, "train.seed", 7)
    project.write(project.rerun(changed=60, errors=85, model=b"seed 7", params=seed))
    status, out, _ = project.verify()
    assert status == 0
    assert out == (
        "equivalent: test accuracy 0.9915 (committed 0.9910, within 0.0030), same digit on "
        "99.40% of 10000 test images; made differently: train.seed 7 (committed 42)\n"
    )


def test_a_seed_as_far_off_as_the_seed_study_measured_is_equivalent(project):
    """Seed 3 of the committed params: SEED_SPREAD's accuracy above seed 42, and its digit on
    the fewest test images of the seeds measured (seed 1: 99.36 %)."""
    better = round(SEED_SPREAD["accuracy"] * IMAGES)
    seed = with_param(project.committed.params, "train.seed", 3)
    errors = COMMITTED_ERRORS - better
    project.write(project.rerun(changed=64, errors=errors, model=b"seed 3", params=seed))
    status, out, _ = project.verify()
    assert (status, out.split(":")[0]) == (0, "equivalent"), out


def test_equivalent_after_another_training_precision(project):
    # What `numerics: native` with `train.precision: mixed_bfloat16` on a bf16 CPU records.
    params = with_param(project.committed.params, "numerics", "native")
    params = with_param(params, "train.precision", "mixed_bfloat16")
    provenance = with_param(PROVENANCE, "numerics", "native")
    provenance = with_param(provenance, "precision", "mixed_bfloat16")
    rerun = project.rerun(
        changed=30, errors=91, model=b"bf16", params=params, provenance=provenance
    )
    project.write(rerun)
    status, out, err = project.verify()
    assert (status, err) == (0, "")
    assert out == (
        "equivalent: test accuracy 0.9909 (committed 0.9910, within 0.0030), same digit on "
        "99.70% of 10000 test images; made differently: numerics native (committed portable), "
        "train.precision mixed_bfloat16 (committed auto), precision mixed_bfloat16 (committed "
        "float32)\n"
    )


def test_the_out_of_distribution_accuracy_is_information_never_a_reason(project):
    """However far apart (or missing on one side), it is shown after the verdict and changes
    nothing of it."""
    seed = with_param(project.committed.params, "train.seed", 7)
    project.write(project.rerun(changed=60, errors=85, model=b"seed 7", params=seed,
                                ood_accuracy=0.5))  # fmt: skip
    status, out, _ = project.verify()
    assert status == 0
    assert out.splitlines() == [
        "equivalent: test accuracy 0.9915 (committed 0.9910, within 0.0030), same digit on "
        "99.40% of 10000 test images; made differently: train.seed 7 (committed 42)",
        "  out of distribution (UCI optdigits, information only): accuracy 0.5000 "
        "(committed not scored)",
    ]
    damaged = replace(project.committed, predicted=project.actual * 0, model=b"zeros",
                      ood_accuracy=0.9455)  # fmt: skip
    project.write(damaged)
    status, out, _ = project.verify("--json")
    verdict = strict_json(out)
    assert (status, verdict["verdict"]) == (1, "different")
    assert not any("distribution" in reason for reason in verdict["reasons"])
    assert verdict["ood_accuracy"] == {"work": 0.9455, "committed": None}
    assert verdict["information"] == [
        "out of distribution (UCI optdigits, information only): accuracy 0.9455 "
        "(committed not scored)"
    ]


def test_equivalent_says_what_it_cannot_tell(project):
    project.write(project.rerun(changed=4, model=b"other bytes", provenance=None))
    status, out, _ = project.verify()
    assert status == 0
    assert out.rstrip().endswith(
        "same digit on 99.96% of 10000 test images; made differently: "
        "no provenance recorded for the work tree's model.h5"
    )


def test_different_after_a_damaged_model(project):
    rng = np.random.default_rng(1)
    damaged = replace(
        project.committed, predicted=rng.integers(0, 10, IMAGES), model=b"damaged model.h5"
    )
    project.write(damaged)
    status, out, _ = project.verify()
    assert status == 1
    head = git(project.repo, "rev-parse", "HEAD")[:7]
    first, accuracy, agreement = out.splitlines()  # same provenance: nothing else to say
    assert first == (
        f"different: the work tree's results are not equivalent to the committed ones (HEAD {head})"
    )
    assert re.fullmatch(r"  accuracy 0\.1\d{3} vs 0\.9910 \(more than 0\.0030 apart\)", accuracy)
    assert re.fullmatch(
        r"  same digit on only 1\d{3} of 10000 test images \(1\d\.\d\d%; at least 99\.00% needed\)",
        agreement,
    )


def test_different_after_a_foreign_model(project):
    params = with_param(project.committed.params, "train.epochs", 3)
    params = with_param(params, "train.batch_size", 64)
    foreign = project.rerun(changed=160, errors=150, model=b"3 epochs", params=params)
    project.write(foreign)
    status, out, _ = project.verify()
    assert status == 1
    assert out.splitlines()[1:] == [
        "  params differ: train.batch_size 64 (committed 128), train.epochs 3 (committed 12)",
        "  accuracy 0.9850 vs 0.9910 (more than 0.0030 apart)",
        "  same digit on only 9840 of 10000 test images (98.40%; at least 99.00% needed)",
    ]


def test_different_data(project):
    project.write(project.rerun(changed=2, model=b"other data", data="0123456789abcdef.dir"))
    status, out, _ = project.verify()
    assert status == 1
    assert (
        out.splitlines()[1] == "  data differs: data/prepared 01234567... (committed 08edf31e...)"
    )


def test_different_test_images(project):
    shorter = project.rerun(model=b"fewer images")
    shorter = replace(shorter, predicted=shorter.predicted[:9000])
    shorter.write(project.repo, project.actual[:9000])
    status, out, _ = project.verify()
    assert status == 1
    assert "  not the same test images: 9000 predictions (committed 10000)" in out.splitlines()


@pytest.mark.parametrize(("errors", "status"), [(120, 0), (121, 1), (60, 0), (59, 1)])
def test_accuracy_tolerance_is_inclusive(project, errors, status):
    """0.9880 and 0.9940 are within 0.0030 of 0.9910; 0.9879 and 0.9941 are not."""
    changed = abs(errors - COMMITTED_ERRORS)
    project.write(project.rerun(changed=changed, errors=errors, model=b"another model.h5"))
    assert project.verify()[0] == status


@pytest.mark.parametrize(("changed", "status"), [(100, 0), (101, 1)])
def test_agreement_threshold_is_inclusive(project, changed, status):
    project.write(project.rerun(changed=changed, model=b"another model.h5"))
    result, out, _ = project.verify()
    assert result == status, out


def test_different_names_what_was_made_differently(project):
    keras = with_param(PROVENANCE, "versions.keras", "3.16.0")
    rerun = project.rerun(changed=300, errors=300, model=b"keras 3.16", provenance=keras)
    project.write(rerun)
    status, out, _ = project.verify()
    assert status == 1
    assert out.splitlines()[-1] == "  made differently: keras 3.16.0 (committed 3.15.1)"


def test_in_a_subfolder_of_the_git_repository(tmp_path, project):
    outer = tmp_path / "outer"
    (outer / "pipeline").mkdir(parents=True)
    git(outer, "init", "-q")
    project.committed.write(outer / "pipeline", project.actual)
    (outer / "pipeline" / "dvc.yaml").write_text(DVC_YAML)
    git(outer, "add", "-A")
    git(outer, "commit", "-qm", "results")
    status, out, _ = Project(outer / "pipeline", project.actual, project.committed).verify()
    assert (status, out.split(":")[0]) == (0, "identical")


# ----------------------------------------------------------------------------------- --json


@pytest.mark.parametrize("case", ["identical", "equivalent", "different"])
def test_json(project, case):
    if case == "equivalent":
        project.write(project.rerun(changed=20, errors=92, model=b"other"))
    elif case == "different":
        project.write(replace(project.committed, predicted=project.actual * 0, model=b"zeros"))
    status, out, err = project.verify("--json")
    assert err == ""
    verdict = strict_json(out)
    assert out.count("\n") == 1
    assert verdict["verdict"] == case
    assert status == (1 if case == "different" else 0)
    assert verdict["accuracy"]["committed"] == 0.991
    assert verdict["provenance"]["committed"]["cpu"]["model"] == "AMD EPYC"
    assert verdict["test_images"] == {"work": IMAGES, "committed": IMAGES}
    assert verdict["stages"] == 6
    assert verdict["commit"] == git(project.repo, "rev-parse", "HEAD").strip()
    assert (verdict["accuracy_tolerance"], verdict["min_agreement"]) == (
        verify.ACCURACY_TOLERANCE,
        verify.MIN_AGREEMENT,
    )
    if case == "identical":
        assert (verdict["reasons"], verdict["agreement"]) == ([], 1.0)
    elif case == "equivalent":
        assert verdict["agreement"] == 0.998
        assert verdict["made_differently"] == []
    else:
        assert len(verdict["reasons"]) == 2
        assert verdict["agreement"] == pytest.approx(0.1, abs=0.01)


def test_json_error(tmp_path):
    status, out, err = verify_in(tmp_path / "absent", "--json")
    assert status == 2
    message = err.removeprefix("mnist-verify: error: ").rstrip("\n")
    assert strict_json(out) == {"verdict": None, "error": message} != {}
    assert message == f"no such folder: {tmp_path / 'absent'}"


# ----------------------------------------------------------------------------------- refusals


def refused(repo: Project | Path, *args: str) -> str:
    """The one line mnist-verify refuses with, after `mnist-verify: error: `."""
    status, out, err = verify_in(repo.repo if isinstance(repo, Project) else repo, *args)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("mnist-verify: error: "), err
    return err.removeprefix("mnist-verify: error: ").rstrip("\n")


def test_refused_outside_a_git_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "no-git"
    folder.mkdir()
    (folder / "dvc.yaml").write_text(DVC_YAML)
    assert refused(folder) == f"{folder.resolve()} is not in a git repository"


def test_refused_without_dvc_yaml(project):
    (project.repo / "dvc.yaml").unlink()
    assert refused(project).startswith(f"no dvc.yaml in {project.repo.resolve()}")


def test_refused_before_the_first_commit(tmp_path):
    repo = tmp_path / "new"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    assert refused(repo) == verify.NO_COMMITTED


@pytest.mark.parametrize("uncommitted", ["dvc.lock", "metrics.json", "reports/predictions.csv"])
def test_refused_when_head_has_no_results(project, uncommitted):
    git(project.repo, "rm", "-q", "--cached", uncommitted)
    git(project.repo, "commit", "-qm", f"without {uncommitted}")
    assert refused(project) == (
        "HEAD has no committed results: run `dvc repro` and commit dvc.lock, metrics.json "
        "and reports/"
    )


def test_refused_without_results_in_the_work_tree(project):
    for name in ("dvc.lock", "metrics.json", "reports/predictions.csv"):
        (project.repo / name).unlink()
    assert refused(project) == "no results in the work tree: run `dvc repro` (or `make`)"


def test_refused_without_some_results_in_the_work_tree(project):
    (project.repo / "metrics.json").unlink()
    assert refused(project) == "the work tree has no metrics.json: run `dvc repro` (or `make`)"


def test_refused_without_the_model(project):
    """A fresh clone has the committed dvc.lock and metrics but no model.h5: not reproduced."""
    (project.repo / "models" / "model.h5").unlink()
    assert refused(project) == "the work tree has no models/model.h5: run `dvc repro` (or `make`)"


@pytest.mark.parametrize("path", ["models/model.h5", "metrics.json", "reports/predictions.csv"])
def test_refused_when_an_output_is_not_what_dvc_lock_records(project, path):
    target = project.repo / path
    target.write_bytes(target.read_bytes() + b"\n")
    assert (
        refused(project) == f"the work tree's {path} is not what dvc.lock records: run `dvc repro`"
    )


def test_refused_after_a_partial_repro(project):
    """`dvc repro train` alone: a new model, but the metrics of the old one."""
    lock_path = project.repo / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text())
    (project.repo / "models" / "model.h5").write_bytes(b"retrained")
    for out in lock["stages"]["train"]["outs"]:
        if out["path"] == "models/model.h5":
            out["md5"] = md5(b"retrained")
    lock_path.write_text(yaml.safe_dump(lock))
    assert refused(project) == (
        "dvc.lock's stage evaluate ran on another models/model.h5: run `dvc repro`"
    )


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        ("metrics.json", b'{"accuracy": NaN}', "metrics.json: NaN is not a number JSON allows"),
        ("metrics.json", b'{"loss": 0.1}', "metrics.json: no accuracy (a number)"),
        ("metrics.json", b'{"accuracy": 1.5}', "metrics.json: accuracy 1.5 is not between 0 and 1"),
        (
            "metrics.json",
            b"{\n",
            "metrics.json: not valid JSON: Expecting property name enclosed in double quotes "
            "(line 2)",
        ),
        (
            "dvc.lock",
            b"stages:\n  train: [\n",
            "dvc.lock: not valid YAML: ",  # then libyaml's or PyYAML's words, and (line 3)
        ),
        ("dvc.lock", b"schema: '2.0'\n", "dvc.lock: not a DVC lock file (no stages)"),
        ("params.yaml", b"- a list", "params.yaml: not a mapping of params"),
        (
            "reports/predictions.csv",
            b"actual,predicted\n7,7\n2,x\n",
            "reports/predictions.csv: line 3: expected two digits 0-9, got '2,x'",
        ),
        (
            "reports/predictions.csv",
            b"digit\n7\n",
            "reports/predictions.csv: the first line must be actual,predicted",
        ),
        (
            "reports/predictions.csv",
            b"\xff\xfe",
            "reports/predictions.csv: not UTF-8 text (byte 0)",
        ),
        ("models/provenance.json", b"[]", "models/provenance.json: not a JSON object"),
    ],
)
def test_refused_with_a_bad_file(project, path, content, reason):
    target, lock = project.repo / path, project.repo / "dvc.lock"
    recorded = md5(target.read_bytes())
    target.write_bytes(content)
    if path != "dvc.lock":  # dvc.lock records the bad file: the file itself is judged
        lock.write_text(lock.read_text().replace(recorded, md5(content)))
    assert refused(project).startswith(reason)


def test_refused_with_a_bad_committed_file(project):
    (project.repo / "metrics.json").write_text('{"accuracy": "high"}')
    git(project.repo, "commit", "-qam", "bad metrics")
    project.write(project.committed)
    assert refused(project) == "HEAD:metrics.json: no accuracy (a number)"


def test_a_model_that_is_a_symlink_to_dev_zero_is_refused_not_hashed_forever(project):
    """Issue 28: `mnist-verify` as a user runs it, with models/model.h5 a symlink to /dev/zero:
    refused at once by what the file is (it would otherwise be hashed without end)."""
    model = project.repo / "models" / "model.h5"
    model.unlink()
    model.symlink_to("/dev/zero")
    run = mnist_verify(project.repo)  # killed after 300 s: a hang fails, not blocks, the test
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (
        "mnist-verify: error: models/model.h5: not a regular file (a character device)\n"
    )


def test_a_result_that_is_a_named_pipe_is_refused_not_waited_for(project):
    metrics = project.repo / "metrics.json"
    metrics.unlink()
    os.mkfifo(metrics)  # reading it would wait for a writer that never comes
    assert refused(project) == "metrics.json: not a regular file (a named pipe)"


def test_a_result_larger_than_a_result_can_be_is_refused_unread(project):
    predictions = project.repo / "reports" / "predictions.csv"
    with open(predictions, "r+b") as file:
        file.truncate(10 << 30)  # 10 GiB, sparse
    assert refused(project) == (
        "reports/predictions.csv: 10,737,418,240 bytes, larger than such a file can be "
        "(at most 1,048,576)"
    )


def test_a_committed_result_larger_than_a_result_can_be_is_refused_unread(project):
    (project.repo / "metrics.json").write_bytes(b" " * (2 << 20) + b'{"accuracy": 0.5}')
    git(project.repo, "commit", "-qam", "a huge metrics.json")
    assert refused(project) == (
        "HEAD:metrics.json: 2,097,169 bytes, larger than such a file can be (at most 1,048,576)"
    )


def test_params_whose_aliases_multiply_without_end_are_refused(project):
    """A few hundred bytes of YAML aliases that name 2**40 settings."""
    lines = ["a0: {x: 1, y: 2}"] + [
        f"a{i}: &a{i} {{p: *a{i - 1}, q: *a{i - 1}}}" for i in range(1, 41)
    ]
    lines[0] = "a0: &a0 {x: 1, y: 2}"
    params, lock = project.repo / "params.yaml", project.repo / "dvc.lock"
    recorded = md5(params.read_bytes())
    params.write_text("\n".join(lines) + "\n")
    lock.write_text(lock.read_text().replace(recorded, md5(params.read_bytes())))
    assert refused(project) == "params.yaml: more than 100,000 values once its aliases are expanded"


@pytest.mark.parametrize(
    ("dotted", "value", "said"),
    [
        ("train.epochs", 3, "params.yaml's train.epochs is 3, but dvc.lock's stage train ran "
         "with 12: run `dvc repro`"),
        ("numerics", "native", "params.yaml's numerics is 'native', but dvc.lock's stage train "
         "ran with 'portable': run `dvc repro`"),
        ("evaluate.batch_size", 10, "params.yaml's evaluate.batch_size is 10, but dvc.lock's "
         "stage evaluate ran with 1000: run `dvc repro`"),
    ],
)  # fmt: skip
def test_params_edited_after_the_run_are_not_identical(project, dotted, value, said):
    """Issue 28 §5: `identical` (exit 0) after params.yaml was edited, while `dvc status` says
    the stages changed. Now refused: the results are not those of the work tree's params."""
    edited = with_param(project.committed.params, dotted, value)
    (project.repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert refused(project) == said
    status, out, _ = project.verify("--json")
    assert status == 2 and strict_json(out) == {"verdict": None, "error": said}


def test_a_param_removed_after_the_run_is_not_identical(project):
    params = copy.deepcopy(project.committed.params)
    del params["train"]["seed"]
    (project.repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert refused(project) == (
        "params.yaml's train.seed is not set, but dvc.lock's stage train ran with 42: run "
        "`dvc repro`"
    )


def test_a_value_dvc_compares_as_equal_is_still_identical(project):
    """DVC compares params by value: 12.0 is 12 for `dvc status` (check_params, which depends
    on the file's bytes, refuses it under `dvc repro`)."""
    edited = with_param(project.committed.params, "train.epochs", 12.0)
    (project.repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    status, out, _ = project.verify()
    assert status == 0 and out.startswith("identical")


def test_params_are_read_from_dvc_lock_as_dvc_wrote_them(project):
    """DVC writes dvc.lock in YAML 1.2, where `1e-07` is a number (YAML 1.1 reads it as the
    text '1e-07'): the committed params.yaml's `epsilon: 1.0e-07` is the same value."""
    lock = project.repo / "dvc.lock"
    assert "epsilon: 1.0e-07" in lock.read_text()
    lock.write_text(lock.read_text().replace("epsilon: 1.0e-07", "epsilon: 1e-07"))
    status, out, _ = project.verify()
    assert status == 0 and out.startswith("identical")


def test_code_edited_after_the_run_is_not_identical(project):
    code = project.repo / "stages" / "train.py"
    code.parent.mkdir()
    code.write_text("# the train stage\n")
    lock_path = project.repo / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text())
    lock["stages"]["train"]["deps"].append(
        {"path": "stages/train.py", "md5": md5(code.read_bytes())}
    )
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))
    assert project.verify()[0] == 0
    code.write_text("# the train stage, edited\n")
    assert refused(project) == (
        "stages/train.py changed since dvc.lock's stage train ran: run `dvc repro`"
    )


def test_any_output_edited_after_the_run_is_not_identical(project):
    """An output file that dvc.lock records with other bytes: `dvc status` calls it modified."""
    onnx = project.repo / "models" / "model.onnx"
    lock = project.repo / "dvc.lock"
    onnx.write_bytes(b"onnx0" + project.committed.model)  # the bytes the lock records
    assert project.verify()[0] == 0
    onnx.write_bytes(b"edited")
    assert refused(project) == (
        "the work tree's models/model.onnx is not what dvc.lock records: run `dvc repro`"
    )
    assert "models/model.onnx" in lock.read_text()


def test_an_output_is_checked_against_its_md5_before_it_is_parsed(project):
    """A predictions.csv that dvc.lock does not record is refused by its md5, unparsed."""
    (project.repo / "reports" / "predictions.csv").write_bytes(b"\xff" * 900_000)
    assert refused(project) == (
        "the work tree's reports/predictions.csv is not what dvc.lock records: run `dvc repro`"
    )


# ------------------------------------------------------------------------- the user's command


def test_the_console_script(project):
    """`mnist-verify` in the repository, as a user runs it after `dvc repro`: fast, and
    without TensorFlow or Keras."""
    start = time.monotonic()
    run = mnist_verify(project.repo)
    seconds = time.monotonic() - start
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.startswith("identical: every output of the 6 stages has the committed bytes")
    assert seconds < 5, seconds  # well under a second on a quiet machine
    project.write(project.rerun(changed=1000, errors=1000, model=b"damaged"))
    run = mnist_verify(project.repo, "--json")
    assert run.returncode == 1
    assert strict_json(run.stdout)["verdict"] == "different"


def test_imports_neither_tensorflow_nor_keras():
    code = "import sys, mnist_dvc.verify; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# ------------------------------------------------------- end to end, on a real quick `dvc repro`


@pytest.fixture(scope="module")
def reproduced(quick_run, tmp_path_factory) -> Path:
    """The quick run's repository with its results committed: HEAD is what a newcomer clones."""
    return quick_run.copy(tmp_path_factory.mktemp("verify") / "repo")


@pytest.mark.slow
def test_a_real_rerun_is_identical_and_native_numerics_equivalent(reproduced):
    sh("dvc", "repro", "-f", "train", cwd=reproduced)  # the stages after it rerun too
    rerun = mnist_verify(reproduced)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.startswith("identical: every output of the 10 stages"), rerun.stdout

    params = reproduced / "params.yaml"
    params.write_text(params.read_text().replace("numerics: portable", "numerics: native"))
    sh("dvc", "repro", cwd=reproduced)
    native = strict_json(mnist_verify(reproduced, "--json").stdout)
    # The same training with other kernels (on an AVX2-only CPU: the same kernels, identical).
    # A quick run's 16 steps leave a weak model (about 0.81) that other rounding moves by more
    # than the full model's thresholds allow, so here the verdict may be "different"; what it
    # must say is why: numerics, and nothing of the params or the data. (The full 12-epoch run
    # under native is equivalent: 0.9908, the same digit on 99.73 %; docs/reproducibility.md.)
    if native["verdict"] != "identical":
        assert any("numerics native (committed portable)" in d for d in native["made_differently"])
        assert all(r.startswith(("accuracy ", "same digit on only")) for r in native["reasons"])

    params.write_text(params.read_text().replace("epochs: 1", "epochs: 2"))
    sh("dvc", "repro", cwd=reproduced)
    foreign = mnist_verify(reproduced)
    assert foreign.returncode == 1
    assert "params differ: train.epochs 2 (committed 1)" in foreign.stdout
    sh("git", "checkout", "--", ".", cwd=reproduced)
    sh("dvc", "checkout", "--force", cwd=reproduced)


@pytest.mark.slow
def test_params_edited_after_a_real_run_are_not_identical(reproduced):
    """Where `dvc status` says a stage changed, the verdict is not `identical` (issue 28 §5)."""
    params = reproduced / "params.yaml"
    before = params.read_text()
    try:
        params.write_text(before.replace("epochs: 1", "epochs: 3"))
        assert "train" in sh("dvc", "status", cwd=reproduced).stdout
        run = mnist_verify(reproduced)
        assert (run.returncode, run.stdout) == (2, "")
        assert run.stderr == (
            "mnist-verify: error: params.yaml's train.epochs is 3, but dvc.lock's stage train "
            "ran with 1: run `dvc repro`\n"
        )
    finally:
        params.write_text(before)
    assert mnist_verify(reproduced).returncode == 0


@pytest.mark.slow
def test_a_damaged_model_is_not_verified(reproduced):
    weights = reproduced / "models" / "model.h5"
    weights.chmod(0o644)
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        damaged = mnist_verify(reproduced)
        assert damaged.returncode == 2
        assert damaged.stderr.strip() == (
            "mnist-verify: error: the work tree's models/model.h5 is not what dvc.lock "
            "records: run `dvc repro`"
        )
    finally:
        sh("dvc", "checkout", "--force", cwd=reproduced)


def test_entries_a_provenance_from_before_lacks_are_not_made_differently():
    from mnist_dvc.verify.results import WEIGHTS, Results
    from mnist_dvc.verify.verdict import made_differently

    before = {"numerics": "portable", "environment": {"TF_NUM_INTRAOP_THREADS": "2"}}
    now = {
        **before,
        "precision": "float32",
        "gpus": [],
        "environment": {"TF_NUM_INTRAOP_THREADS": "2", "CUDA_VISIBLE_DEVICES": ""},
    }

    def side(where: str, md5: str, provenance: dict) -> Results:
        return Results(where, "", {"train": {WEIGHTS: md5}}, {}, {"numerics": "portable"}, 0.99,
                       [], {"model_h5_md5": md5, **provenance})  # fmt: skip

    assert made_differently(side("the work tree", "a", now), side("HEAD", "b", before)) == []
    hidden = {**now, "environment": {"TF_NUM_INTRAOP_THREADS": "2", "CUDA_VISIBLE_DEVICES": "0"}}
    assert made_differently(side("the work tree", "a", hidden), side("HEAD", "b", now)) == [
        'CUDA_VISIBLE_DEVICES 0 (committed "")'
    ]
    bf16 = {**now, "precision": "mixed_bfloat16", "numerics": "native"}
    bf16["environment"] = {"TF_NUM_INTRAOP_THREADS": "2", "CUDA_VISIBLE_DEVICES": None}
    assert made_differently(side("the work tree", "a", bf16), side("HEAD", "b", before)) == [
        "numerics native (committed portable)",
        "precision mixed_bfloat16 (committed float32)",
    ]
