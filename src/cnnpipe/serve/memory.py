"""Keep a long-running server's memory flat: fewer glibc malloc arenas.

glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and
memory freed in one arena is not reused by another. A server whose request threads allocate
images of every size grows that way for minutes: in the soak (benchmarks/soak.py, 3 minutes,
2 cores) both servers grew 7.0 % with the default and 5.7 % with two arenas. ``MALLOC_ARENA_MAX=2``
in the environment does the same from process start. (ONNX Runtime's own arena is the other
grower; see :func:`cnnpipe.models.onnx_runtime.ort_session`.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's arenas for threads started from now on, unless MALLOC_ARENA_MAX already says.
    Returns whether the cap is in place (False on a libc without mallopt, e.g. musl or macOS)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
