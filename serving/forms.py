"""The HTTP service's form fields: the pydantic models BentoML validates a multipart form against,
and the requests they become.

Apart from serving/service.py so they are importable without BentoML or models: the fuzzer
(benchmarks/fuzz.py) calls exactly what the service calls. A field that fails here is BentoML's
400; what passes goes to the inference core, which checks the rest (as it does for gRPC).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from cnnpipe.dream.presets import PRESETS, DreamRequest
from cnnpipe.explain.style import StyleRequest


def _given(value: Any) -> Any:
    """An empty form field (or JSON ``null`` as text) is a field not given."""
    return None if value in ("", "null") else value


def _layer_list(value: Any) -> Any:
    """``layers`` as JSON text (``'["features.3", "features.4:0.5"]'``) or one bare name."""
    value = _given(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return [value]
        except RecursionError:  # '[[[[…' thousands deep: a 400, not the parser's crash
            raise ValueError("layers is nested too deeply; send a JSON list of layer names") from None
    return value


Given = BeforeValidator(_given)
PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]  # the names of cnnpipe.dream.presets


class StyleFields(BaseModel):
    """The style-transfer form: the content ``image``, the ``style`` image, and options (None = default)."""

    image: Path
    style: Path
    steps: Annotated[int | None, Field(ge=1), Given] = None
    content_weight: Annotated[float | None, Field(ge=0), Given] = None
    style_weight: Annotated[float | None, Field(ge=0), Given] = None
    init: Annotated[Literal["content", "noise"] | None, Given] = None
    seed: Annotated[int | None, Given] = None


class DreamFields(BaseModel):
    """The DeepDream form: the image file and what to dream (None = the preset's value)."""

    image: Path
    preset: Annotated[PresetName | None, Given] = None
    layers: Annotated[list[str] | None, BeforeValidator(_layer_list)] = None
    # The ranges of cnnpipe.dream.engine.validate, declared so the OpenAPI document states them
    # (the engine still checks; a test sends each bound through both).
    octaves: Annotated[int | None, Field(ge=1), Given] = None
    octave_scale: Annotated[float | None, Field(gt=1, le=4), Given] = None
    steps: Annotated[int | None, Field(ge=1), Given] = None
    lr: Annotated[float | None, Field(gt=0, le=1), Given] = None
    jitter: Annotated[int | None, Field(ge=0), Given] = None
    seed: Annotated[int | None, Given] = None


def dream_form(fields: dict[str, Any]) -> tuple[Path, DreamRequest]:
    """A validated :class:`DreamFields` (as BentoML passes it: field name → value) → the upload and the request."""
    rest = dict(fields)
    return rest.pop("image"), DreamRequest.of(rest)


def style_form(fields: dict[str, Any]) -> tuple[Path, Path, StyleRequest]:
    """A validated :class:`StyleFields` → the content upload, the style upload and the request."""
    rest = dict(fields)
    return rest.pop("image"), rest.pop("style"), StyleRequest(**rest)
