"""Task admission shared by the worker processes of one server: at most ``limit`` tasks at once.

Each slot is a file in one folder, held with an exclusive ``flock`` for as long as its task runs.
The kernel lets go of a lock when its holder closes the file or dies, so a worker that crashes
mid-task frees its slot, and no count can drift out of step with the tasks really held (a counter
in a file or a database could, after a crash). ``flock`` locks belong to an open file, not to a
process: two requests in one worker contend for slots as two workers do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class TaskSlots:
    """``limit`` slot files in ``folder``; :meth:`take` holds a free one, or yields ``False``."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit

    @contextlib.contextmanager
    def take(self) -> Iterator[bool]:
        """``True`` and a slot held until the ``with`` ends, or ``False`` when all are taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for index in range(self.limit):
            fd = os.open(self.folder / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield True
            finally:
                os.close(fd)  # closing the file releases the lock
            return
        yield False
