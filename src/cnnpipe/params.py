"""Typed, validated view of ``params.yaml``: one dataclass per section, each checking itself.

Types (``Literal`` choices included) are checked when the YAML is read; ranges in each
``__post_init__``, so every way of building params (``load_params``, benchmark overrides, code)
is validated the same. A typo or an out-of-range value fails before any work with one line
naming the param (``classifier.lr must be > 0, got -1``). What each param means is documented once,
in the README's table (tests/test_docs.py checks it lists exactly these params).
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from cnnpipe import paths
from cnnpipe.errors import ParamError

T = TypeVar("T")

AutoBool = bool | Literal["auto"]
"""true, false or "auto" (decided by the hardware at run time)."""
Device = Literal["auto", "cpu", "cuda"]
ClassifierArchName = Literal["airbench", "resnet9"]  # = cnnpipe.models.checkpoint.CLASSIFIER_ARCHS (tested)
SRArchName = Literal["ressr", "espcn"]  # = cnnpipe.models.checkpoint.SR_ARCHS (tested)
Flip = Literal["alternating", "random", "none"]
OptimizerName = Literal["sgd", "muon"]
Loss = Literal["l1", "mse"]
DreamPreset = Literal["quick", "detailed", "classic"]  # = cnnpipe.dream.presets.PRESETS (tested)
HEX = set("0123456789abcdefABCDEF")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ParamError(message)


@dataclass(frozen=True)
class DataSource:
    url: str
    md5: str = ""

    def check(self, name: str) -> None:
        _require(bool(self.url.strip()), f"{name}.url must not be empty")
        md5 = self.md5.strip()
        _require(
            md5 == "" or (len(md5) == 32 and set(md5) <= HEX),
            f"{name}.md5 must be 32 hex digits (or empty to print it), got {self.md5!r}",
        )


@dataclass(frozen=True)
class DataParams:
    cifar10: DataSource
    bsds300: DataSource

    def __post_init__(self) -> None:
        self.cifar10.check("data.cifar10")
        self.bsds300.check("data.bsds300")


@dataclass(frozen=True)
class ClassifierParams:
    arch: ClassifierArchName = "airbench"
    widths: list[int] = field(default_factory=lambda: [64, 256, 256])
    width: int = 32
    epochs: int = 10
    batch_size: int = 1024
    lr: float = 1.5
    momentum: float = 0.85
    weight_decay: float = 1.33e-3
    norm_lr_scale: float = 64.0
    optimizer: OptimizerName = "sgd"  # muon: the conv filters step with Muon (cnnpipe.train.muon), the rest with SGD
    muon_lr: float = 0.24
    muon_momentum: float = 0.6
    warmup: float = 0.23
    lr_start: float = 0.2
    lr_end: float = 0.07
    label_smoothing: float = 0.2
    translate: int = 2
    low_res: int = 0  # progressive resizing: the first low_res_epochs train on images resized to low_res² (0 = off)
    low_res_epochs: int = 0
    flip: Flip = "alternating"
    cutout: int = 0
    whiten_bias_epochs: int = 3
    lookahead: bool = True
    ema: float = 0.0
    tta: int = 2
    bf16: AutoBool = "auto"
    compile: bool = False
    max_train_images: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        c = "classifier"
        _require(self.width >= 1, f"{c}.width must be >= 1, got {self.width}")
        _require(
            len(self.widths) == 3 and all(w >= 1 for w in self.widths),
            f"{c}.widths must be three positive integers, got {self.widths}",
        )
        _require(self.epochs >= 1, f"{c}.epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"{c}.batch_size must be >= 1, got {self.batch_size}")
        _require(self.lr > 0, f"{c}.lr must be > 0, got {self.lr}")
        _require(0 <= self.momentum < 1, f"{c}.momentum must be in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0, f"{c}.weight_decay must be >= 0, got {self.weight_decay}")
        _require(0 <= self.label_smoothing < 1, f"{c}.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        _require(0 <= self.ema < 1, f"{c}.ema must be in [0, 1), got {self.ema}")
        _require(not (self.ema and self.lookahead), f"{c}.ema and {c}.lookahead are alternatives; set one")
        _require(self.norm_lr_scale > 0, f"{c}.norm_lr_scale must be > 0, got {self.norm_lr_scale}")
        _require(0 <= self.warmup < 1, f"{c}.warmup must be in [0, 1), got {self.warmup}")
        _require(self.lr_start >= 0 and self.lr_end >= 0, f"{c}.lr_start and {c}.lr_end must be >= 0")
        _require(self.muon_lr > 0, f"{c}.muon_lr must be > 0, got {self.muon_lr}")
        _require(0 <= self.muon_momentum < 1, f"{c}.muon_momentum must be in [0, 1), got {self.muon_momentum}")
        _require(
            self.low_res == 0 or 8 <= self.low_res <= 32,
            f"{c}.low_res must be 0 (off) or 8..32 pixels, got {self.low_res}",
        )
        _require(
            0 <= self.low_res_epochs <= self.epochs,
            f"{c}.low_res_epochs must be in 0..epochs ({self.epochs}), got {self.low_res_epochs}",
        )
        _require(0 <= self.translate <= 8, f"{c}.translate must be in 0..8 pixels, got {self.translate}")
        _require(0 <= self.cutout < 32, f"{c}.cutout must be in 0..31 pixels, got {self.cutout}")
        _require(self.whiten_bias_epochs >= 0, f"{c}.whiten_bias_epochs must be >= 0, got {self.whiten_bias_epochs}")
        _require(self.tta in (0, 1, 2), f"{c}.tta must be 0 (none), 1 (flip) or 2 (flip + translate), got {self.tta}")
        _require(self.max_train_images >= 0, f"{c}.max_train_images must be >= 0, got {self.max_train_images}")


@dataclass(frozen=True)
class SRParams:
    scales: list[int] = field(default_factory=lambda: [2, 3, 4])
    arch: SRArchName = "ressr"
    channels: int = 48
    blocks: int = 8
    patch_size: int = 32
    patches_per_epoch: int = 4096
    epochs: int = 80
    batch_size: int = 16
    lr: float = 1e-3
    loss: Loss = "l1"
    bf16: AutoBool = "auto"
    finish_fraction: float = 0.1  # the last tenth of the epochs: MSE loss in fp32, tuned for PSNR
    seed: int = 0

    def __post_init__(self) -> None:
        _require(
            all(k in (2, 3, 4) for k in self.scales) and len(set(self.scales)) == len(self.scales),
            f"sr.scales must be distinct values of 2, 3 and 4, got {self.scales}",
        )
        _require(self.channels >= 2, f"sr.channels must be >= 2, got {self.channels}")
        _require(self.blocks >= 1, f"sr.blocks must be >= 1, got {self.blocks}")
        _require(self.patch_size >= 4, f"sr.patch_size must be >= 4, got {self.patch_size}")
        _require(self.epochs >= 1, f"sr.epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"sr.batch_size must be >= 1, got {self.batch_size}")
        _require(self.patches_per_epoch >= self.batch_size, "sr.patches_per_epoch must be >= sr.batch_size")
        _require(self.lr > 0, f"sr.lr must be > 0, got {self.lr}")
        _require(0 <= self.finish_fraction <= 1, f"sr.finish_fraction must be in [0, 1], got {self.finish_fraction}")

    @property
    def finish_epochs(self) -> int:
        """How many of the last epochs fit MSE in fp32: ``finish_fraction`` of them, rounded."""
        return int(self.finish_fraction * self.epochs + 0.5)


@dataclass(frozen=True)
class EvaluateParams:
    sr_examples: int = 3
    sr_crop: int = 96
    sr_extra_sets: dict[str, str] = field(default_factory=dict)
    sr_self_ensemble: bool = True  # also score the ×8 self-ensemble (``psnr_model_x8``)

    def __post_init__(self) -> None:
        _require(self.sr_examples >= 1, f"evaluate.sr_examples must be >= 1, got {self.sr_examples}")
        _require(self.sr_crop >= 8, f"evaluate.sr_crop must be >= 8, got {self.sr_crop}")
        for name, folder in self.sr_extra_sets.items():
            _require(Path(folder).is_dir(), f"evaluate.sr_extra_sets.{name}: no folder {folder!r}")


@dataclass(frozen=True)
class ExplainGalleryParams:
    """The look-inside gallery: how many CIFAR-10 test images, the layers whose activations are drawn,
    and the optimisation steps of each class-maximisation image."""

    images: int = 6
    layers: list[str] = field(default_factory=lambda: ["features.1", "features.2", "features.3", "features.4"])
    class_steps: int = 256

    def __post_init__(self) -> None:
        _require(self.images >= 1, f"explain_gallery.images must be >= 1, got {self.images}")
        steps = self.class_steps
        _require(1 <= steps <= 2000, f"explain_gallery.class_steps must be in 1..2000, got {steps}")
        _require(bool(self.layers), "explain_gallery.layers must name at least one layer")


@dataclass(frozen=True)
class DreamGalleryParams:
    """The gallery's images and layers; the dream settings are a preset of
    :mod:`cnnpipe.dream.presets`, each overridable (``null`` = the preset's value)."""

    images: int = 3
    size: int = 128
    layers: list[str] = field(default_factory=lambda: ["features.1", "features.2", "features.3", "features.4"])
    preset: DreamPreset = "quick"
    octaves: int | None = None
    octave_scale: float | None = None
    steps: int | None = None
    lr: float | None = None
    jitter: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        g = "dream_gallery"
        _require(self.images >= 1 and self.size >= 16, f"{g}.images must be >= 1 and {g}.size >= 16")
        # The engine checks these again when it runs; here they fail before the pipeline's first stage.
        counts = [n for n in (self.octaves, self.steps) if n is not None]
        _require(all(n >= 1 for n in counts), f"{g}.octaves and {g}.steps must be >= 1")
        scale, lr = self.octave_scale, self.lr
        _require(scale is None or 1 < scale <= 4, f"{g}.octave_scale must be in (1, 4], got {scale}")
        _require(lr is None or 0 < lr <= 1, f"{g}.lr must be in (0, 1], got {lr}")
        _require(self.jitter is None or self.jitter >= 0, f"{g}.jitter must be >= 0, got {self.jitter}")


@dataclass(frozen=True)
class ExportParams:
    opset: int = 18
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        _require(7 <= self.opset <= 23, f"export.opset must be in 7..23, got {self.opset}")
        _require(self.tolerance > 0, f"export.tolerance must be > 0, got {self.tolerance}")


@dataclass(frozen=True)
class Params:
    data: DataParams
    device: Device = "auto"
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    sr: SRParams = field(default_factory=SRParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    export: ExportParams = field(default_factory=ExportParams)
    dream_gallery: DreamGalleryParams = field(default_factory=DreamGalleryParams)
    explain_gallery: ExplainGalleryParams = field(default_factory=ExplainGalleryParams)


def _coerce(value: Any, kind: Any, name: str) -> Any:
    """``value`` read from YAML, checked against the type hint ``kind``."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ParamError(f"{name} must be a mapping, got {value!r}")
        return _build(kind, value, name)  # type: ignore[arg-type]  # is_dataclass narrows to instance | type
    if kind == AutoBool:
        if not isinstance(value, bool) and value != "auto":
            raise ParamError(f"{name} must be true, false or auto, got {value!r}")
        return value
    if origin is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ParamError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ParamError(f"{name} must be a non-empty list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(f"{name} must be a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(kind, types.UnionType):  # X | None: null is allowed
        if value is None:
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if kind is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{name} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 2e-3 as a string; YAML 1.2 and DVC do not
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(f"{name} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # a list of layer names may hold bare indices
        if not isinstance(value, str):
            raise ParamError(f"{name} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported param type {kind!r}")


def _build(cls: type[T], raw: dict[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # T is always a dataclass here
    known = {f.name for f in fields}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ParamError(f"unknown param {where} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in fields:
        name = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in raw:
            kwargs[f.name] = _coerce(raw[f.name], hints[f.name], name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"missing param {name}")
    return cls(**kwargs)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamError(f"no {path} in {Path.cwd()}; run stages from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ParamError(f"{path} must hold a mapping at the top level")
    return raw


def load_params(path: Path | str = paths.PARAMS) -> Params:
    return _build(Params, _read_yaml(Path(path)), "")


def section_with_overrides(cls: type[T], prefix: str, overrides: list[str], path: Path | str = paths.PARAMS) -> T:
    """One section of ``params.yaml`` (defaults if absent) with ``key=value`` overrides applied, each
    value read as YAML (``bf16=false``, ``scales=[2,3]``) and checked like the pipeline's own params.
    For benchmarks, which explore params without editing the file."""
    path = Path(path)
    raw = dict(_read_yaml(path).get(prefix, {})) if path.is_file() else {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ParamError(f"expected key=value, got {item!r}")
        raw[key] = yaml.safe_load(value)
    return _build(cls, raw, prefix)


def scale_argument(argv: list[str], params: Params, stage: str) -> int:
    """The SCALE argument of a per-scale stage, checked against ``sr.scales``."""
    if len(argv) != 1 or not argv[0].isdigit():
        raise ParamError(f"usage: python -m stages.{stage} SCALE (one of sr.scales {params.sr.scales})")
    scale = int(argv[0])
    if scale not in params.sr.scales:
        raise ParamError(f"scale {scale} is not in sr.scales {params.sr.scales}")
    return scale
