"""User-facing errors: one readable line, a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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


def exit_on_user_error(func: F) -> F:
    """Turn a CnnpipeError into `error: <message>` on stderr and exit status 1.

    Programming errors still raise with a traceback: those are bugs, not user input.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except CnnpipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]  # wraps() keeps func's signature, which mypy cannot see
