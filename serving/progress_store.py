"""DeepDream task progress, per worker process: task id → octave, step, fraction, done.

Bounded: the oldest entries go first (task results themselves live in BentoML's result store).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class ProgressStore:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def update(self, task_id: str, **state: Any) -> None:
        with self._lock:
            self._entries.setdefault(task_id, {}).update(state)
            self._entries.move_to_end(task_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def cancel(self, task_id: str) -> None:
        """Ask a running task to stop; it does at its next step (DeepDream checks after each)."""
        self.update(task_id, cancel_requested=True)

    def cancel_requested(self, task_id: str) -> bool:
        with self._lock:
            return bool(self._entries.get(task_id, {}).get("cancel_requested"))

    def get(self, task_id: str) -> dict[str, Any]:
        """The task's state, or that of a task not started yet (fraction 0, not done)."""
        with self._lock:
            state = dict(self._entries.get(task_id, {}))
        return {"task_id": task_id, "fraction": 0.0, "done": False, **state}
