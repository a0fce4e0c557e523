"""Per-epoch logging shared by the training stages (DVCLive + a console line)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def epoch_logger(live: Any) -> Callable[[dict[str, float]], None]:
    """A training ``on_epoch`` callback that logs every value to a ``dvclive.Live`` step.

    ``live`` is duck-typed so the library imports without dvclive (e.g. on a bare GPU box).
    """

    def log(row: dict[str, float]) -> None:
        for key, value in row.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)

    return log
