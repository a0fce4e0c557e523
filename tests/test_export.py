import json
import os
from pathlib import Path

import onnx
import pytest
import torch

from cnnpipe.errors import CnnpipeError
from cnnpipe.export import onnx as exporter
from cnnpipe.export.onnx import SR_DYNAMIC_AXES, export, export_checked, max_abs_diff
from cnnpipe.models.classifier import AirbenchNet, ResNet9
from cnnpipe.models.sr import ESPCN, ResSR
from cnnpipe.params import ExportParams


@pytest.mark.parametrize("model", [ResNet9(width=8), AirbenchNet(10, (8, 16, 16))], ids=["resnet9", "airbench"])
def test_classifier_onnx_matches_pytorch_at_any_batch(tmp_path: Path, model: torch.nn.Module) -> None:
    model.eval()
    path = tmp_path / "classifier.onnx"
    export(model, torch.rand(2, 3, 32, 32), path, {0: "batch"}, 18, {"classes": ["a", "b"]})

    onnx.checker.check_model(str(path))
    batch_dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # symbolic, not a fixed size
    diff = max_abs_diff(model, path, [torch.rand(1, 3, 32, 32), torch.rand(7, 3, 32, 32)])
    assert diff < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["classes"]) == ["a", "b"]


def test_sr_onnx_matches_pytorch_at_any_size(tmp_path: Path) -> None:
    model = ESPCN(scale=3, channels=16).eval()
    path = tmp_path / "sr.onnx"
    export(model, torch.rand(2, 1, 24, 24), path, {0: "batch", 2: "height", 3: "width"}, 18, {"scale": 3})

    inputs = [torch.rand(1, 1, 17, 31), torch.rand(3, 1, 40, 9)]
    assert max_abs_diff(model, path, inputs) < 1e-4


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ressr_onnx_matches_pytorch_at_any_size(tmp_path: Path, scale: int) -> None:
    model = ResSR(scale=scale, channels=8, blocks=2).eval()
    with torch.no_grad():  # a trained-looking net, not the zero-initialised output conv
        model.tail.weight.normal_(0, 0.05)
    path = tmp_path / "sr.onnx"
    export(model, torch.rand(2, 1, 24, 24), path, {0: "batch", 2: "height", 3: "width"}, 18, {"scale": scale})
    assert max_abs_diff(model, path, [torch.rand(1, 1, 17, 31), torch.rand(3, 1, 40, 9)]) < 1e-4


def test_parity_check_detects_a_different_model(tmp_path: Path) -> None:
    model = ESPCN(scale=2, channels=8).eval()
    path = tmp_path / "sr.onnx"
    export(model, torch.rand(1, 1, 16, 16), path, {0: "batch", 2: "height", 3: "width"}, 18, {})
    with torch.no_grad():
        model.body[0].bias.add_(0.5)
    assert max_abs_diff(model, path, [torch.rand(1, 1, 16, 16)]) > 1e-3


@pytest.mark.parametrize("opset", [17, 18])
def test_opset_is_honoured(tmp_path: Path, opset: int) -> None:
    path = tmp_path / "m.onnx"
    export(ESPCN(scale=2, channels=4).eval(), torch.rand(1, 1, 8, 8), path, {0: "batch"}, opset, {})
    assert {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""] == opset


@pytest.mark.parametrize("parity", ["passes", "fails"])
def test_a_model_reaches_its_path_only_after_the_parity_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parity: str
) -> None:
    """The check runs on the written temp file while the previous model is still in place (a
    reader, or a SIGKILL mid-check, never meets an unchecked model); one that fails is never
    published, and the previous one (from an older checkpoint) is removed with it."""
    model = ESPCN(scale=2, channels=8).eval()
    path, report = tmp_path / "sr.onnx", tmp_path / "export.json"
    path.write_bytes(b"the previous model")
    seen: list[tuple[Path, bytes]] = []
    check = exporter.max_abs_diff

    def watched(net: torch.nn.Module, checked: Path, inputs: list[torch.Tensor]) -> float:
        seen.append((checked, path.read_bytes()))
        if parity == "fails":  # the PyTorch net changes after the export: a real mismatch
            with torch.no_grad():
                net.body[0].bias.add_(0.5)
        return check(net, checked, inputs)

    monkeypatch.setattr(exporter, "max_abs_diff", watched)
    args = (model, torch.rand(1, 1, 16, 16), path, SR_DYNAMIC_AXES, ExportParams(), {})
    if parity == "passes":
        assert export_checked("sr", *args, checks=[torch.rand(1, 1, 16, 16)], report=report) < 1e-4
        onnx.checker.check_model(str(path), full_check=True)
    else:
        with pytest.raises(CnnpipeError, match=r"sr: ONNX Runtime differs from PyTorch by .* > export.tolerance"):
            export_checked("sr", *args, checks=[torch.rand(1, 1, 16, 16)], report=report)
        assert not path.exists()
    [(checked, at_path)] = seen
    assert checked != path and at_path == b"the previous model"
    assert sorted(os.listdir(tmp_path)) == sorted(["export.json", *(["sr.onnx"] if parity == "passes" else [])])
    assert json.loads(report.read_text())["tolerance"] == ExportParams().tolerance
