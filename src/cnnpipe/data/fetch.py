"""Download a dataset archive, verify its md5, extract it safely and move it into place atomically.

The source may be an ``https://``/``http://`` URL, a ``file://`` URL or a plain local path (an
offline mirror). Nothing is left behind on failure: the download and the extraction happen in
temporary siblings of the destination, and only a fully verified tree is renamed into place.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cnnpipe.errors import FetchError
from cnnpipe.progress import progress

CHUNK = 1 << 20
SOURCE_FILE = "SOURCE.json"


@dataclass(frozen=True)
class Source:
    """Where an archive comes from and the md5 it must have ('' = not pinned yet)."""

    url: str
    md5: str
    param: str  # params.yaml prefix, named in error messages, e.g. "data.cifar10"


def _local_path(url: str) -> Path | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "":
        return Path(url)
    return None


def download(source: Source, target: Path, timeout: float = 60.0) -> str:
    """Copy the archive at ``source.url`` to ``target`` and return its md5 hex digest."""
    digest = hashlib.md5(usedforsecurity=False)
    local = _local_path(source.url)
    total: int | None  # bytes expected, when the server says
    try:
        if local is not None:
            if not local.is_file():
                raise FetchError(
                    f"{source.param}.url: no such file {str(local)!r}; point {source.param}.url at the archive"
                )
            stream, total = local.open("rb"), local.stat().st_size
        else:
            scheme = urllib.parse.urlparse(source.url).scheme
            if scheme not in ("http", "https"):
                raise FetchError(
                    f"{source.param}.url: unsupported scheme {scheme!r} in {source.url!r} "
                    "(use https://, http://, file:// or a local path)"
                )
            response = urllib.request.urlopen(source.url, timeout=timeout)
            stream = response
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with (
            stream,
            target.open("wb") as out,
            progress(total=total, unit="B", unit_scale=True, desc=f"fetch {source.param}", leave=False) as bar,
        ):
            received = 0
            while chunk := stream.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise FetchError(
                f"download of {source.url} was cut short ({received} of {total} bytes); "
                f"retry, or point {source.param}.url at a working mirror"
            )
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        raise FetchError(
            f"download of {source.url} failed: HTTP {exc.code} {exc.reason}; check {source.param}.url"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"download of {source.url} failed: {reason}; check the network "
            f"or point {source.param}.url at a local mirror"
        ) from None
    return digest.hexdigest()


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why a tar member must not be extracted, or None if it is a plain file or folder."""
    name = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or name.is_absolute() or ":" in name.parts[0]:
        return "absolute path"
    if ".." in name.parts:
        return "path with '..'"
    if member.issym() or member.islnk():
        return "link"
    if not (member.isfile() or member.isdir()):
        return "device, fifo or other special file"
    return None


# tarfile's extraction filters arrived in Python 3.11.4 (PEP 706); Debian 12's Python is 3.11.2.
TARFILE_FILTERS = hasattr(tarfile, "data_filter")


def safe_extract(archive: Path, dest: Path, source: Source) -> None:
    """Extract a tar archive into ``dest``, refusing links, devices, absolute paths and '..'.

    Every member is checked before anything is written; where Python has it (3.11.4+), tarfile's
    ``data`` filter then guards the extraction itself (permissions, ownership) as a second line
    of defence.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                reason = _unsafe_reason(member)
                if reason:
                    raise FetchError(
                        f"archive from {source.url} is unsafe: member {member.name!r} is a "
                        f"{reason}; nothing was extracted (check {source.param}.url)"
                    )
            if TARFILE_FILTERS:
                tar.extractall(dest, members=members, filter="data")
            else:
                tar.extractall(dest, members=members)
    except FetchError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise FetchError(
            f"archive from {source.url} is corrupted or truncated ({exc}); "
            f"re-download it or fix {source.param}.url / {source.param}.md5"
        ) from None


def fetch(source: Source, dest: Path) -> str:
    """Download, verify and extract ``source`` into the folder ``dest``; return the md5.

    ``dest`` is replaced atomically: either it holds the complete new tree (plus SOURCE.json
    recording url and md5) or it is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        work = Path(tmp)
        archive = work / "archive"
        md5 = download(source, archive)
        expected = source.md5.strip().lower()
        if expected and md5 != expected:
            raise FetchError(
                f"md5 mismatch for {source.url}: expected {expected}, got {md5}; the download "
                f"is corrupted or {source.param}.md5 is wrong"
            )
        if not expected:
            print(
                f"warning: {source.param}.md5 is not pinned; the archive's md5 is {md5}. "
                f"Pin it with: dvc exp run -S {source.param}.md5={md5} (or edit params.yaml)"
            )
        tree = work / "tree"
        tree.mkdir()
        safe_extract(archive, tree, source)
        archive.unlink()
        record = {"url": source.url, "md5": md5, "md5_pinned": bool(expected)}
        (tree / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        _replace_dir(tree, dest)
    return md5


def _replace_dir(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``, swapping out any previous ``dest`` with renames only."""
    if dest.exists() or dest.is_symlink():
        old = new.parent / "old"
        dest.rename(old)
        new.rename(dest)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    else:
        new.rename(dest)
