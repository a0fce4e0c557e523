"""serving.progress_store: one task's state as two workers (two connections to one file) see it."""

from __future__ import annotations

from pathlib import Path

from serving.progress_store import ProgressStore


def test_an_update_from_one_store_merges_with_the_cancel_another_wrote(tmp_path: Path) -> None:
    runner, other = ProgressStore(tmp_path / "p.db"), ProgressStore(tmp_path / "p.db")
    assert other.get("t1") == {"task_id": "t1", "fraction": 0.0, "done": False}  # not started yet
    runner.update("t1", octave=1, step=3, fraction=0.25)
    other.cancel("t1")
    assert runner.cancel_requested("t1")
    runner.update("t1", step=4, fraction=0.3)  # a later step keeps the flag another worker set
    assert other.get("t1") == {
        "task_id": "t1",
        "fraction": 0.3,
        "done": False,
        "octave": 1,
        "step": 4,
        "cancel_requested": True,
    }
    assert not other.cancel_requested("t2")


def test_the_least_recently_updated_tasks_go_past_capacity(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "p.db", capacity=3)
    for task in ("a", "b", "c"):
        store.update(task, fraction=0.5)
    store.update("a", fraction=0.6)  # now b is the oldest
    store.update("d", fraction=0.1)
    assert store.get("b")["fraction"] == 0.0  # forgotten
    assert [store.get(t)["fraction"] for t in ("a", "c", "d")] == [0.6, 0.5, 0.1]


def test_reset_forgets_every_task(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "p.db")
    store.update("a", fraction=1.0, done=True)
    store.reset()
    assert store.get("a")["done"] is False
