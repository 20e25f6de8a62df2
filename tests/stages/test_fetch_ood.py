"""The fetch_ood stage: the out-of-distribution set's file from a wheel, a gzipped or plain
copy, or the download cache, always checked against its pinned digest; every refusal one
line."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from mnist_dvc import optdigits
from mnist_dvc.ood_sources import check_source
from stages.fetch_ood import FetchOodError, fetch_ood
from tests.helpers import REPO_ROOT, run_stage_module

FILE = optdigits.DIGITS
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def real_csv(real_ood_raw_dir) -> Path:
    return real_ood_raw_dir / FILE.name


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("sklearn/__init__.py", "")
        wheel.writestr(member, gzip.compress(data))
    return path


def _write_settings(folder: Path, sources: list[str]) -> None:
    (folder / "ood_sources.yaml").write_text(
        yaml.safe_dump({"sources": sources, "timeout_s": TIMEOUT_S})
    )


def test_from_a_wheel_a_gzipped_or_a_plain_copy(real_csv, tmp_path):
    data = real_csv.read_bytes()
    packed = tmp_path / "digits.csv.gz"
    packed.write_bytes(gzip.compress(data))
    wheel = _wheel(tmp_path / "scikit_learn-0-py3-none-any.whl", FILE.member, data)
    for number, source in enumerate([str(wheel), packed.as_uri(), str(real_csv)]):
        out = tmp_path / f"out{number}"
        assert fetch_ood([source], out, tmp_path / f"cache{number}", timeout_s=TIMEOUT_S) == source
        assert [p.name for p in out.iterdir()] == [FILE.name]
        optdigits.verify(out / FILE.name)
        optdigits.verify(tmp_path / f"cache{number}" / FILE.sha256)


def test_from_the_scikit_learn_wheel_by_pip(tmp_path):
    """The committed source with an empty cache: pip downloads one wheel (from its own cache,
    where it has one) and the file comes out of it."""
    source = "pip:scikit-learn==1.6.1"
    assert fetch_ood([source], tmp_path / "out", tmp_path / "cache", timeout_s=300) == source
    optdigits.verify(tmp_path / "out" / FILE.name)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [FILE.name]


def test_a_release_pip_cannot_find_is_one_line(tmp_path):
    with pytest.raises(FetchOodError) as refused:
        fetch_ood(["pip:scikit-learn==0.0.1"], tmp_path / "out", tmp_path / "c", timeout_s=120)
    assert str(refused.value).startswith(
        "no source gave digits.csv: pip:scikit-learn==0.0.1 (pip download scikit-learn==0.0.1: "
    )
    assert "\n" not in str(refused.value)


def test_the_cache_is_read_first_and_a_damaged_entry_dropped(real_csv, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(real_csv, cache / FILE.sha256)
    assert fetch_ood(["/nowhere.csv"], tmp_path / "a", cache, timeout_s=TIMEOUT_S).startswith(
        "download cache"
    )
    (cache / FILE.sha256).write_bytes(b"damaged")
    assert fetch_ood([str(real_csv)], tmp_path / "b", cache, timeout_s=TIMEOUT_S) == str(real_csv)
    optdigits.verify(cache / FILE.sha256)


def test_a_wrong_file_or_wheel_is_skipped_then_refused_in_one_line(real_csv, tmp_path, capsys):
    other = tmp_path / "digits.csv"
    other.write_bytes(real_csv.read_bytes().replace(b",0,", b",1,", 1))  # one pixel
    empty = _wheel(tmp_path / "other-1-py3-none-any.whl", "other/data.csv.gz", b"")
    with pytest.raises(FetchOodError) as refused:
        fetch_ood([str(other), str(empty)], tmp_path / "out", tmp_path / "cache", timeout_s=1)
    assert str(refused.value) == (
        f"no source gave {FILE.name}: {other} ({FILE.name}: SHA-256 "
        f"{optdigits.file_digest(other, 'sha256')}, expected {FILE.sha256}); "
        f"{empty} ({empty.name}: no {FILE.member} in it)"
    )
    assert capsys.readouterr().err.count("fetch_ood: skipped ") == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_wrong_digest_ends_the_stage_in_one_line(real_csv, workdir, tmp_path):
    other = tmp_path / "digits.csv"
    other.write_bytes(real_csv.read_bytes()[:-2] + b"\n")
    _write_settings(workdir, [str(other)])
    run = run_stage_module("fetch_ood", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fetch_ood: error: no source gave {FILE.name}: {other} (")
    assert f"expected {FILE.sha256})" in last and "Traceback" not in run.stderr
    assert not [p for p in (workdir / "data").rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("pip:scikit-learn>=1.6", "a pip source must be pip:<package>==<exact version>"),
        ("pip:git+https://example.com/x.git", "a pip source must be"),
        ("ftp://example.com/digits.csv", "use an https, http or file URL or a path"),
        ("/data/digits.npz", "name a .whl, .csv.gz or .csv file"),
        # open() raises ValueError for a NUL: it was 'a bug in fetch_ood', exit status 70
        ("file:///data/a%00b.csv", "a path cannot hold a NUL byte"),
        ("/data/a\x00b.csv", "a path cannot hold a NUL byte"),
    ],
)
def test_a_source_of_another_kind_is_refused_naming_its_key(source, words, workdir, tmp_path):
    with pytest.raises(ValueError, match=words):
        check_source(source)
    _write_settings(workdir, ["pip:scikit-learn==1.6.1", source])
    run = run_stage_module("fetch_ood", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fetch_ood: error: ood_sources.yaml: sources.1: {words}"), last


def test_the_committed_sources_name_a_pinned_wheel():
    committed = yaml.safe_load((REPO_ROOT / "ood_sources.yaml").read_text())
    assert committed["sources"] == ["pip:scikit-learn==1.6.1"]


def _damaged(packed: bytes) -> bytes:
    """`packed` (gzip's or a zip member's deflate stream) with bytes past its header flipped:
    what a truncated or corrupted download holds. zlib raises zlib.error for it, not OSError."""
    damaged = bytearray(packed)
    damaged[20:40] = b"\xff" * 20
    return bytes(damaged)


def _packed_oddly(path: Path, real: bytes, how: str) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(FILE.member, gzip.compress(real))
    raw = bytearray(path.read_bytes())
    central = raw.find(b"PK\x01\x02")
    if how == "encrypted":  # general purpose flag bit 0, in the local and the central header
        raw[6] |= 1
        raw[central + 8] |= 1
    elif how == "unknown method":  # 99 (AES): zipfile raises NotImplementedError
        raw[8:10] = raw[central + 10 : central + 12] = (99).to_bytes(2, "little")
    else:  # damaged deflate data right after the local header and the member's name
        start = 30 + len(FILE.member)
        raw[start : start + 10] = b"\xff" * 10
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("how", ["encrypted", "unknown method", "damaged"])
def test_a_damaged_or_oddly_packed_wheel_is_skipped_and_the_next_source_tried(
    real_csv, tmp_path, capsys, how
):
    """They were 'a bug in fetch_ood' (zlib.error, NotImplementedError, RuntimeError), exit 70,
    and the sources after them were never tried."""
    real = real_csv.read_bytes()
    wheel = _packed_oddly(tmp_path / "scikit_learn-0-py3-none-any.whl", real, how)
    packed = tmp_path / "digits.csv.gz"
    packed.write_bytes(_damaged(gzip.compress(real)))
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert fetch_ood([str(wheel), str(packed), str(real_csv)], out, cache, timeout_s=1) == str(
        real_csv
    )
    skipped = capsys.readouterr().err.splitlines()
    assert len(skipped) == 2, skipped
    assert skipped[0].startswith(f"fetch_ood: skipped {wheel}: {wheel.name}: ")
    assert skipped[1].startswith(f"fetch_ood: skipped {packed}: digits.csv.gz: not a valid gzip")
    optdigits.verify(out / FILE.name)


def test_a_cache_that_cannot_keep_the_file_costs_a_line_not_the_fetch(real_csv, tmp_path, capsys):
    """MNIST_CACHE_DIR naming a file ended the stage with '<it>: File exists', the verified file
    thrown away; a cache entry that is not a regular file was an error too."""
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    out = tmp_path / "out"
    assert fetch_ood([str(real_csv)], out, not_a_folder, timeout_s=TIMEOUT_S) == str(real_csv)
    optdigits.verify(out / FILE.name)
    assert capsys.readouterr().err.strip() == (
        f"fetch_ood: not kept in the download cache {not_a_folder} ({not_a_folder}: File "
        "exists): the next run downloads again"
    )
    cache = tmp_path / "cache"
    (cache / FILE.sha256).mkdir(parents=True)  # an entry that is a folder: a miss
    assert fetch_ood([str(real_csv)], tmp_path / "b", cache, timeout_s=TIMEOUT_S) == str(real_csv)


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_mnist_cache_dir_is_the_default_not_the_current_folder(monkeypatch, value):
    """It was Path(''), the current folder: the cache's files landed in the work tree."""
    from mnist_dvc.paths import user_cache
    from mnist_dvc.pinned_fetch import default_cache_dir

    monkeypatch.setenv("MNIST_CACHE_DIR", value)
    assert default_cache_dir() == user_cache()
