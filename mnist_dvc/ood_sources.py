"""Where the out-of-distribution set can come from (ood_sources.yaml), and taking its one file
out of what a source gives. Nothing here checks the digest: fetch_ood does that.

A source is one string of `sources`:
- `pip:<package>==<version>`: the file taken out of a wheel of that package and version from
  the package index pip is set up for (scikit-learn ships it); pip downloads the wheel alone
  (`--no-deps`) and only a wheel (`--only-binary=:all:`): a source distribution would run its
  build code to be downloaded, and a wheel is a zip file that is only read here;
- a URL (https, http or file) or a path ending in `.whl`: such a wheel itself;
- one ending in `.csv.gz` or `.csv`: the file, gzipped or not (a copy of your own, offline).

As for MNIST (mnist_dvc/sources.py), each source's size is bounded before its bytes are
copied, a local source must be a regular file, and the gzipped file is unpacked no further
than the set's size; the downloads are mnist_dvc/download.py's, within `timeout_s` in all.
"""

from __future__ import annotations

import gzip
import re
import shutil
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Annotated, BinaryIO
from urllib.parse import unquote, urlparse

from pydantic import AfterValidator, Field

from mnist_dvc import commands
from mnist_dvc.download import check_location, download
from mnist_dvc.errors import StageError, describe
from mnist_dvc.files import open_regular
from mnist_dvc.ood import OOD_SOURCES
from mnist_dvc.optdigits import DIGITS, PublishedFile
from mnist_dvc.quoting import quote
from mnist_dvc.settings import Section, load_settings

# An exact release of a package by its name on the index: a range or a URL could change.
PIP_SPEC = re.compile(r"pip:[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?==\d+(\.\d+)*")
SUFFIXES = (".whl", ".csv.gz", ".csv")
MAX_WHEEL = 256 << 20  # scikit-learn's wheels are 9-40 MB, by platform
MAX_GZIPPED = 1 << 20  # the gzipped CSV is 57 KB
# How a wheel's members are packed (PEP 427 wheels are plain zip files, stored or deflated).
WHEEL_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
MAX_TIMEOUT_S = 86_400.0  # as for MNIST's sources: above about 1e10 s the timers overflow


class OodSourceError(StageError):
    """This source could not give the file; the message says why in a few words."""


def check_source(source: str) -> str:
    """Return `source` if it is a kind this module fetches; raise ValueError if not."""
    if source.startswith("pip:"):
        if not PIP_SPEC.fullmatch(source):
            raise ValueError(
                "a pip source must be pip:<package>==<exact version>, such as "
                f"pip:scikit-learn==1.6.1 (got {quote(source)})"
            )
        return source
    check_location(source)
    if not urlparse(source).path.endswith(SUFFIXES):
        raise ValueError(f"name a .whl, .csv.gz or .csv file (got {quote(source)})")
    return source


class OodSourcesParams(Section):
    """ood_sources.yaml: where the out-of-distribution set may come from (configuration)."""

    # Tried in order until one gives the file with the pinned digest.
    sources: Annotated[
        list[Annotated[str, Field(min_length=1), AfterValidator(check_source)]],
        Field(min_length=1),
    ]
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)]  # for one source in all


def load_ood_sources(path: Path = OOD_SOURCES) -> OodSourcesParams:
    """Read and validate ood_sources.yaml; ParamsError with one line on any problem."""
    return load_settings(path, OodSourcesParams)


def obtain(source: str, dest: Path, *, timeout_s: float, file: PublishedFile = DIGITS) -> None:
    """Write `file`, uncompressed, to `dest`, from `source`; its folder is scratch space."""
    try:
        check_source(source)
    except ValueError as error:
        raise OodSourceError(str(error)) from None
    scratch = dest.parent
    if source.startswith("pip:"):
        _from_wheel(_pip_download(source.removeprefix("pip:"), scratch, timeout_s), dest, file)
        return
    path = urlparse(source).path
    if path.endswith(".whl"):
        wheel = scratch / Path(path).name
        _copy(source, wheel, at_most=MAX_WHEEL, timeout_s=timeout_s)
        _from_wheel(wheel, dest, file)
    elif path.endswith(".csv.gz"):
        packed = scratch / Path(path).name
        _copy(source, packed, at_most=MAX_GZIPPED, timeout_s=timeout_s)
        with open(packed, "rb") as stream:
            _gunzip(stream, dest, file, name=Path(path).name)
    else:
        _copy(source, dest, at_most=file.size, timeout_s=timeout_s)


def _pip_download(spec: str, into: Path, timeout_s: float) -> Path:
    folder = into / "wheel"
    folder.mkdir()
    argv = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "--dest", str(folder)]  # fmt: skip
    commands.run(argv, error=OodSourceError, name=f"pip download {spec}", timeout=timeout_s)
    wheels = list(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise OodSourceError(f"pip download {spec}: expected one wheel, found {len(wheels)}")
    return wheels[0]


def _from_wheel(wheel: Path, dest: Path, file: PublishedFile) -> None:
    """The file out of a wheel: its one member, read only if its sizes are the file's."""
    try:
        with open_regular(wheel, MAX_WHEEL) as stream, zipfile.ZipFile(stream) as archive:
            try:
                member = archive.getinfo(file.member)
            except KeyError:
                raise OodSourceError(f"{wheel.name}: no {file.member} in it") from None
            if member.file_size > MAX_GZIPPED:
                raise OodSourceError(f"{wheel.name}: {file.member} has {member.file_size} bytes")
            if member.flag_bits & 0x1 or member.compress_type not in WHEEL_COMPRESSION:
                # zipfile would raise RuntimeError or NotImplementedError: not a wheel pip writes
                raise OodSourceError(f"{wheel.name}: {file.member} is encrypted or packed in a "
                                     "way wheels are not")  # fmt: skip
            with archive.open(member) as packed:
                _gunzip(packed, dest, file, name=f"{wheel.name}: {file.member}")
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise OodSourceError(f"{wheel.name}: not a valid wheel ({describe(error)})") from None


def _gunzip(packed: BinaryIO, dest: Path, file: PublishedFile, *, name: str) -> None:
    try:
        with gzip.open(packed, "rb") as src, open(dest, "wb") as out:
            out.write(src.read(file.size + 1))
    except (OSError, EOFError, zlib.error) as error:  # zlib.error: damaged compressed data
        raise OodSourceError(f"{name}: not a valid gzip file ({describe(error)})") from None
    if dest.stat().st_size > file.size:
        raise OodSourceError(f"{name}: more than {file.size} bytes unpacked, not {file.name}")


def _copy(url: str, dest: Path, *, at_most: int, timeout_s: float) -> None:
    """A URL or a local path copied to `dest`, refused past `at_most` bytes."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        download(url, dest, timeout_s=timeout_s, at_most=at_most, error=OodSourceError)
        return
    local = Path(unquote(parsed.path) if parsed.scheme else url).expanduser()
    try:
        with open_regular(local, at_most) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 20)
    except FileNotFoundError:
        raise OodSourceError(f"{local}: no such file") from None
    except OSError as error:  # not a regular file, larger than the file can be, unreadable
        raise OodSourceError(f"{local}: {describe(error)}") from None
