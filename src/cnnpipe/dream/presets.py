"""Named DeepDream settings and the one function that turns a request into :class:`DreamParams`.

The CLI, the HTTP service, the gRPC server and the gallery stage all call :func:`dream_params`,
so one request gives the same dream (byte for byte on the same device) through each of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnpipe.dream.engine import DreamError, DreamParams
from cnnpipe.dream.names import DEFAULT_LAYER, DEFAULT_PRESET

PRESETS: dict[str, DreamParams] = {
    # 3 octaves ×1.4, 10 steps: seconds on a CPU for a few hundred pixels a side.
    "quick": DreamParams(),
    # More octaves and steps, more jitter: for larger jobs (the task endpoint with preset=detailed).
    "detailed": DreamParams(octaves=4, steps=20, jitter=8),
    # The DeepDream tutorials' VGG19 recipe (4 octaves ×2, 25 steps, no jitter): benchmarks/dream.py.
    "classic": DreamParams(octaves=4, octave_scale=2.0, steps=25, jitter=0),
}


@dataclass(frozen=True)
class DreamRequest:
    """What a caller may choose; ``None`` takes the preset's value (and the backbone's default layer).

    Protocol adapters map "not given" to ``None``: an absent form field, an unset proto3 optional
    field, a ``null`` param. A value that is given is used as given (0 included).
    """

    preset: str | None = None
    layers: Sequence[str] | Mapping[str, float] | None = None  # names, indices or "NAME:WEIGHT"
    channels: Sequence[int] | None = None
    octaves: int | None = None
    octave_scale: float | None = None
    steps: int | None = None
    lr: float | None = None
    jitter: int | None = None
    smoothing: float | None = None
    seed: int | None = None

    @classmethod
    def of(cls, source: object) -> DreamRequest:
        """The request held by any object with (some of) these attribute or key names: parsed CLI
        arguments, the gallery's params, an HTTP form. Missing ones are None."""
        if isinstance(source, Mapping):
            return cls(**{f.name: source.get(f.name) for f in dataclasses.fields(cls)})
        return cls(**{f.name: getattr(source, f.name, None) for f in dataclasses.fields(cls)})


def _layer_weights(layers: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """``["features.3:1", "features.4:0.5"]`` (weight 1 when left out) or a mapping → name → weight."""
    pairs = layers.items() if isinstance(layers, Mapping) else (str(x).partition(":")[::2] for x in layers)
    weights = {}
    for name, weight in pairs:
        try:
            weights[str(name)] = float(weight) if weight != "" else 1.0
        except (TypeError, ValueError):
            raise DreamError(f"layer must be NAME or NAME:WEIGHT, got {name}:{weight}") from None
    return weights


def dream_params(
    request: DreamRequest,
    backbone: str,
    *,
    max_pixels: int | None = None,
    max_total_steps: int | None = None,
    tile_size: int | None = None,
) -> DreamParams:
    """The preset, overridden by what the request sets, with the caller's limits.

    Raises :class:`DreamError` for an unknown preset or a value of the wrong type.
    """
    name = request.preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise DreamError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    weights = _layer_weights(request.layers or [DEFAULT_LAYER.get(backbone, "")])
    chosen = {
        "octaves": request.octaves,
        "octave_scale": request.octave_scale,
        "steps": request.steps,
        "lr": request.lr,
        "jitter": request.jitter,
        "smoothing": request.smoothing,
        "seed": request.seed,
        "max_pixels": max_pixels,
        "max_total_steps": max_total_steps,
        "tile_size": tile_size,
    }
    types = {f.name: f.type for f in dataclasses.fields(DreamParams)}
    overrides: dict[str, Any] = {"layers": weights}
    for key, value in chosen.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (types[key] == "int" and value % 1):
            raise DreamError(f"{key} must be {'an integer' if types[key] == 'int' else 'a number'}, got {value!r}")
        overrides[key] = float(value) if types[key] == "float" else int(value)
    if request.channels:
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in request.channels):
            raise DreamError(f"channels must be integers, got {list(request.channels)!r}")
        overrides["channels"] = tuple(request.channels)
    return dataclasses.replace(PRESETS[name], **overrides)
