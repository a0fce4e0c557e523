"""DeepDream and style-transfer task progress: task id → octave, step, fraction, done, cancel flag.

Shared by every worker process of one server: a task runs in the worker that accepted it, but its
``/…_progress`` and ``/…_cancel`` calls reach whichever worker the connection landed on. So the
state lives in a SQLite file (WAL: readers never wait for the running task's writes) beside
BentoML's own task results (``task_result.db`` under ``BENTOML_HOME``, likewise shared), and a
cancel written by one worker is read by the running task at its next step. SQLite is in the
standard library and is what BentoML itself uses for this job, so it adds no dependency and no
server to run.

Bounded: past ``capacity`` tasks the least recently updated go first (the results themselves live
in BentoML's result store).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS progress (task_id TEXT PRIMARY KEY, state TEXT NOT NULL, touched INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS progress_touched ON progress (touched)",
)
# One statement: a worker's update merges into what another worker wrote (the cancel flag), and
# ``touched`` counts updates across the workers (not a clock, which could step back).
UPSERT = (
    "INSERT INTO progress (task_id, state, touched) "
    "VALUES (?, ?, (SELECT coalesce(max(touched), 0) + 1 FROM progress)) ON CONFLICT (task_id) "
    "DO UPDATE SET state = json_patch(progress.state, excluded.state), touched = excluded.touched"
)
PRUNE = "DELETE FROM progress WHERE touched < (SELECT touched FROM progress ORDER BY touched DESC LIMIT 1 OFFSET ?)"


class ProgressStore:
    """Task progress in the SQLite file ``path``, shared by the processes that open it."""

    def __init__(self, path: Path, capacity: int = 1000) -> None:
        self.path, self.capacity = path, capacity
        self._lock = threading.Lock()  # one connection per process, used from the request threads
        self._connection: sqlite3.Connection | None = None

    def reset(self) -> None:
        """Forget every task: a server starting anew (its BentoML task results are cleared too)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: each statement is its own transaction; 30 s for another worker's write lock.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            with contextlib.suppress(sqlite3.OperationalError):  # another worker may be switching it right now
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # progress, not a ledger: no fsync per step
            for statement in SCHEMA:
                db.execute(statement)
            self._connection = db
        return self._connection

    def update(self, task_id: str, **state: Any) -> None:
        with self._lock:
            db = self._db()
            db.execute(UPSERT, (task_id, json.dumps(state)))
            db.execute(PRUNE, (self.capacity - 1,))

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Ask a running task to stop; it does at its next step (DeepDream checks after each).
        Returns the task's state as it stands."""
        self.update(task_id, cancel_requested=True)
        return self.get(task_id)

    def cancel_requested(self, task_id: str) -> bool:
        return bool(self._state(task_id).get("cancel_requested"))

    def get(self, task_id: str) -> dict[str, Any]:
        """The task's state, or that of a task not started yet (fraction 0, not done)."""
        return {"task_id": task_id, "fraction": 0.0, "done": False, **self._state(task_id)}

    def _state(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db().execute("SELECT state FROM progress WHERE task_id = ?", (task_id,)).fetchone()
        return json.loads(row[0]) if row else {}
