"""The architecture, enforced: imports point one way, dvc.yaml's code deps match what each stage
runs, and the pipeline's paths are the ones dvc.yaml declares."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing

import pytest
import yaml

from cnnpipe import params, paths
from cnnpipe.dream.presets import PRESETS
from cnnpipe.models.checkpoint import CLASSIFIER_ARCHS, SR_ARCHS

from .imports import REPO, closure, direct_imports, loaded_after, module_file, project_modules

# What each part of the library may import (besides itself). Bottom to top: the shared base, data,
# models, then the pipeline's jobs and DeepDream, then serving. The CLI is an entry point.
BASE = {
    "cnnpipe",
    "cnnpipe.errors",
    "cnnpipe.paths",
    "cnnpipe.atomic",
    "cnnpipe.progress",
    "cnnpipe.device",
    "cnnpipe.provenance",
    "cnnpipe.flops",
}
ALLOWED = {
    "base": {"base"},
    "data": {"base", "data"},
    "models": {"base", "data", "models"},
    "params": {"base"},
    "train": {"base", "data", "models", "params", "train"},
    "evaluate": {"base", "data", "models", "params", "evaluate"},
    "export": {"base", "data", "models", "params", "export"},
    "dream": {"base", "data", "models", "dream"},
    "serve": {"base", "data", "models", "dream", "explain", "serve"},
    "explain": {"base", "data", "models", "dream", "explain"},  # backbones come from cnnpipe.dream
    "compare": {"base", "compare"},  # reads what the pipeline wrote, through DVC; runs nothing of it
    "cli": {"base", "data", "models", "dream", "serve", "params", "compare", "explain", "cli"},
}


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    return module.split(".")[1]


@pytest.mark.parametrize("module", project_modules("cnnpipe"))
def test_library_imports_point_down(module: str) -> None:
    assert layer(module) in ALLOWED, f"{module}: no layer; add it to tests/test_layout.py ALLOWED"
    wrong = sorted(
        m for m in direct_imports(module) if m.startswith("cnnpipe") and layer(m) not in ALLOWED[layer(module)]
    )
    assert not wrong, f"{module} ({layer(module)}) must not import {wrong}"


@pytest.mark.parametrize(
    ("top", "forbidden"),
    [
        ("cnnpipe", ("stages", "serving", "tests", "benchmarks")),  # the library imports none of its users
        ("stages", ("cnnpipe.serve", "serving", "tests")),  # the pipeline never needs the serving core
        ("serving", ("cnnpipe.train", "cnnpipe.evaluate", "cnnpipe.export", "cnnpipe.params", "stages", "tests")),
        ("benchmarks", ("tests", "stages")),
    ],
)
def test_entry_points_import_only_what_they_may(top: str, forbidden: tuple[str, ...]) -> None:
    for module in project_modules(top):
        reached = closure(module) if top != "cnnpipe" else set(direct_imports(module))
        wrong = sorted(m for m in reached if m.startswith(forbidden))
        assert not wrong, f"{module} reaches {wrong}"


def _runs_code(module: str) -> bool:
    """False for a package ``__init__`` holding only its docstring."""
    path = module_file(module)
    body = ast.parse(path.read_text()).body
    return path.name != "__init__.py" or not all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body
    )


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_dvc_code_deps_are_exactly_the_code_a_stage_runs(stage: str) -> None:
    """A stage's deps list every project module it can load (also lazily), and no other code:
    a missing one leaves `dvc status` clean while its outputs are stale."""
    spec = _stages()[stage]
    entry = re.fullmatch(r"python -m (stages\.\w+).*", spec["cmd"]).group(1)
    runs = {entry} | {m for m in closure(entry) if m.startswith("cnnpipe") and _runs_code(m)}
    expected = {str(module_file(m).relative_to(REPO)) for m in runs}
    declared = {d for d in spec["deps"] if d.endswith(".py")}
    assert declared == expected, (
        f"dvc.yaml {stage}: add {sorted(expected - declared)}, remove {sorted(declared - expected)}"
    )


def test_the_pipeline_paths_are_the_ones_dvc_yaml_declares() -> None:
    declared = set()
    for spec in _stages().values():
        for key in ("deps", "outs", "metrics", "plots"):
            for entry in spec.get(key, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    declared = {d.replace("${item.scale}", "3") for d in declared}
    named = [getattr(paths, n) for n in dir(paths) if n.isupper()]
    named += [f(3) for f in (paths.sr_checkpoint, paths.sr_onnx, paths.sr_metrics, paths.sr_comparison)]
    named += [paths.sr_export_metrics(3), paths.dataset("cifar10"), paths.dataset("bsds300")]
    named += [paths.sha256_record(paths.CLASSIFIER_ONNX), paths.sha256_record(paths.sr_onnx(3))]
    folders = {"data", "models", "metrics", "plots", "dvclive", "params.yaml"}  # params.yaml: DVC's default
    for path in named:
        text = str(path)
        if text in folders:
            continue
        live = text.startswith("dvclive/")
        assert text in declared or (live and any(d.startswith(text + "/") for d in declared)), text


def test_param_choices_match_the_registries() -> None:
    assert set(typing.get_args(params.ClassifierArchName)) == set(CLASSIFIER_ARCHS)
    assert set(typing.get_args(params.SRArchName)) == set(SR_ARCHS)
    assert set(typing.get_args(params.DreamPreset)) == set(PRESETS)


TRAINING_PARAMS = {"train_sr": "sr", "export_sr": "sr", "train_classifier": "classifier", "export_onnx": "classifier"}
"""Stages → the section of params that makes their model: the trainers, and the exports, which
record those params in the model's provenance."""


@pytest.mark.parametrize(("stage", "section"), sorted(TRAINING_PARAMS.items()))
def test_a_training_stage_tracks_every_param_of_its_model(stage: str, section: str) -> None:
    """A param the trainer reads but the stage does not list leaves `dvc repro` skipping a stage
    whose model it would change. ``sr.scales`` is the matrix itself, not a per-model param."""
    declared = {next(iter(p)) if isinstance(p, dict) else p for p in _stages()[stage].get("params", [])}
    fields = dataclasses.fields(params.SRParams if section == "sr" else params.ClassifierParams)
    names = {f"{section}.{f.name}" for f in fields} - {"sr.scales"}
    assert section in declared or names <= declared, f"dvc.yaml {stage}: add {sorted(names - declared)}"


def test_the_command_line_starts_without_torch() -> None:
    """`cnnpipe --help` and `cnnpipe compare` run no net: importing the CLI imports neither torch
    nor ONNX Runtime (torch alone is two seconds of every start here); commands that need a net
    import it when they run."""
    _, loaded = loaded_after("import cnnpipe.cli", ("torch", "torchvision", "onnxruntime"))
    assert loaded == [], loaded


def test_the_servers_import_neither_torchvision_nor_onnx() -> None:
    """Each HTTP or gRPC replica imports the inference core at start (the HTTP server twice: its
    arbiter checks the models first): torchvision (it pulls in torch._dynamo) and the onnx package
    load only where a call needs them, so a replica is ready sooner (benchmarks/startup.py)."""
    servers = (
        "cnnpipe.serve.core, cnnpipe.serve.grpc_server, cnnpipe.serve.model_check, serving.middleware, serving.forms"
    )
    _, loaded = loaded_after(f"import {servers}", ("torchvision", "onnx", "torch._dynamo"))
    assert loaded == [], loaded
