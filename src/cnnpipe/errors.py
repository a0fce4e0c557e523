"""User-facing errors: one readable line, a non-zero exit, never a traceback."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class CnnpipeError(Exception):
    """An error the user can fix (bad param, bad input, corrupted download)."""


class ParamError(CnnpipeError):
    """A value in params.yaml is missing or invalid."""


class FetchError(CnnpipeError):
    """Downloading, verifying or extracting a dataset archive failed."""


class DataError(CnnpipeError):
    """A dataset on disk is missing or does not have the expected layout."""


class OutputError(CnnpipeError):
    """Writing an output failed (disk full, quota, read-only folder); the previous file is kept."""


DISK_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free space and rerun"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota and rerun"),
    errno.EROFS: ("read-only file system", "write to a writable folder and rerun"),
}
"""Errors of the machine, never of the code: reported as one line wherever they come from."""


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, or one it was raised from or while handling.

    Writers that go through a Python file object (``torch.save``) re-raise a failed ``write()``
    as their own error, with the OSError as its context.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def output_error(path: Path | str | None, exc: OSError) -> OutputError:
    """``exc`` (raised writing ``path``, where known) as one line: what failed, which file, what to do."""
    reason, hint = DISK_ERRORS.get(exc.errno or 0, (exc.strerror or str(exc), "check the folder and rerun"))
    where = f" writing {path}" if path is not None else ""
    return OutputError(f"{reason.lower()}{where} ({hint})")


def exit_on_user_error(func: F) -> F:
    """Turn a CnnpipeError into `error: <message>` on stderr and exit status 1.

    So is a full disk, an exceeded quota or a read-only file system met by a writer that does not
    go through :mod:`cnnpipe.atomic` (DVCLive's logs, say). Programming errors still raise with a
    traceback: those are bugs, not user input.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except CnnpipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        except Exception as exc:
            disk = os_error_in(exc)
            if disk is None or disk.errno not in DISK_ERRORS:
                raise
            print(f"error: {output_error(disk.filename, disk)}", file=sys.stderr)  # write() names no file
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]  # wraps() keeps func's signature, which mypy cannot see
