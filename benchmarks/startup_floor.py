"""BentoML's own start-up floor for benchmarks/startup.py: one no-op endpoint, no models, no torch."""

from __future__ import annotations

import bentoml


@bentoml.service
class Floor:
    @bentoml.api
    def noop(self, value: int = 0) -> int:
        return value
