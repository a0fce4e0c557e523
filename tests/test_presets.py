"""DeepDream presets: one function turns every entry point's request into DreamParams."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from cnnpipe.dream.engine import DreamError, DreamParams
from cnnpipe.dream.names import PRESET_NAMES
from cnnpipe.dream.presets import DEFAULT_PRESET, PRESETS, DreamRequest, dream_params


def test_an_empty_request_is_the_default_preset_at_the_backbones_default_layer() -> None:
    params = dream_params(DreamRequest(), "vgg19")
    assert params == dataclasses.replace(PRESETS[DEFAULT_PRESET], layers={"features.26": 1.0})
    assert PRESETS[DEFAULT_PRESET] == DreamParams()  # the dataclass defaults are the default preset


def test_set_fields_override_the_named_preset_and_limits_apply() -> None:
    request = DreamRequest(preset="classic", steps=7, jitter=0, layers=["features.3:0.5", "4"])
    params = dream_params(request, "classifier", max_pixels=100, max_total_steps=50, tile_size=64)
    assert (params.octaves, params.octave_scale, params.steps, params.jitter) == (4, 2.0, 7, 0)
    assert params.layers == {"features.3": 0.5, "4": 1.0}
    assert (params.max_pixels, params.max_total_steps, params.tile_size) == (100, 50, 64)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (DreamRequest(preset="wild"), "unknown preset 'wild'; choose one of quick, detailed, classic"),
        (DreamRequest(layers=["features.3:lots"]), "layer must be NAME or NAME:WEIGHT, got features.3:lots"),
        (DreamRequest(octaves=2.5), "octaves must be an integer, got 2.5"),  # type: ignore[arg-type]
        (DreamRequest(jitter=True), "jitter must be an integer, got True"),
        (DreamRequest(layers={"features.3": "x"}), "layer must be NAME or NAME:WEIGHT, got features.3:x"),
        (DreamRequest(channels=["a"]), "channels must be integers, got \\['a'\\]"),
    ],
)
def test_bad_requests_are_refused_with_one_line(request_: DreamRequest, message: str) -> None:
    with pytest.raises(DreamError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        dream_params(request_, "classifier")


def test_a_request_is_read_from_any_object_with_the_field_names() -> None:
    args = argparse.Namespace(preset=None, layers=["features.3"], steps=4, input="in.png", channels=None)
    assert DreamRequest.of(args) == DreamRequest(layers=["features.3"], steps=4)


def test_the_torch_free_preset_names_are_the_presets() -> None:
    """The CLI offers cnnpipe.dream.names.PRESET_NAMES (no torch import); each has its settings."""
    assert tuple(PRESETS) == PRESET_NAMES and DEFAULT_PRESET in PRESETS
