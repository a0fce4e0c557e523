"""Typed, validated view of ``params.yaml``.

Every stage reads its section through here, so a typo or an out-of-range value fails before any
work with one line naming the param (``classifier.lr must be > 0, got -1``).
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

from cnnpipe.errors import ParamError
from cnnpipe.fetch import Source

T = TypeVar("T")

FLIPS = ("alternating", "random", "none")

AutoBool = bool | Literal["auto"]
"""true, false or "auto" (decided by the hardware at run time)."""


@dataclass(frozen=True)
class DataSource:
    url: str
    md5: str = ""


@dataclass(frozen=True)
class DataParams:
    cifar10: DataSource
    bsds300: DataSource


@dataclass(frozen=True)
class ClassifierParams:
    arch: str = "airbench"
    widths: list[int] = field(default_factory=lambda: [64, 256, 256])  # airbench: its three conv groups
    width: int = 32  # resnet9: base channels
    epochs: int = 10
    batch_size: int = 1024
    lr: float = 1.5  # SGD-Nesterov peak, for the batch-mean loss
    momentum: float = 0.85
    weight_decay: float = 1.33e-3  # PyTorch-style (multiplied by the lr)
    norm_lr_scale: float = 64.0  # lr multiplier of batch-norm params (their weight decay is divided by it)
    warmup: float = 0.23  # fraction of the steps spent rising to the peak lr
    lr_start: float = 0.2  # lr at step 0 and at the end, as fractions of the peak
    lr_end: float = 0.07
    label_smoothing: float = 0.2
    translate: int = 2  # random-crop padding (reflect), pixels
    flip: str = "alternating"  # alternating | random | none
    cutout: int = 0  # side of a square set to the mean colour at a random place in each training image; 0 = off
    whiten_bias_epochs: int = 3  # airbench: train the whitening conv's bias this many epochs, then freeze it
    lookahead: bool = True  # every 5 steps pull the weights onto a slow EMA of themselves (hlb-cifar10)
    ema: float = 0.0  # decay of a separate exponential moving average of the weights; 0 = off
    tta: int = 2  # test-time augmentation of reported accuracy: 0 none, 1 flip, 2 flip + 1-px translations
    bf16: AutoBool = "auto"  # bf16 autocast; auto = CUDA or a CPU with native bf16
    compile: bool = False  # torch.compile (falls back to eager where it cannot run)
    max_train_images: int = 0
    seed: int = 0


@dataclass(frozen=True)
class SRParams:
    scales: list[int] = field(default_factory=lambda: [2, 3, 4])  # one model per scale
    arch: str = "ressr"
    channels: int = 32
    blocks: int = 6  # residual blocks (ressr only)
    patch_size: int = 32  # LR patch side; the HR patch is patch_size × scale
    patches_per_epoch: int = 4096
    epochs: int = 26
    batch_size: int = 16
    lr: float = 2e-3
    loss: str = "l1"  # l1 | mse
    bf16: AutoBool = "auto"
    seed: int = 0


@dataclass(frozen=True)
class EvaluateParams:
    sr_examples: int = 3
    sr_crop: int = 96
    sr_extra_sets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DreamGalleryParams:
    images: int = 3
    size: int = 128
    layers: list[str] = field(default_factory=lambda: ["features.1", "features.2", "features.3", "features.4"])
    octaves: int = 3
    octave_scale: float = 1.4
    steps: int = 10
    lr: float = 0.02
    jitter: int = 4
    seed: int = 0


@dataclass(frozen=True)
class ExportParams:
    opset: int = 18
    tolerance: float = 1e-4


@dataclass(frozen=True)
class Params:
    data: DataParams
    device: str = "auto"
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    sr: SRParams = field(default_factory=SRParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    export: ExportParams = field(default_factory=ExportParams)
    dream_gallery: DreamGalleryParams = field(default_factory=DreamGalleryParams)

    def source(self, name: str) -> Source:
        src: DataSource = getattr(self.data, name)
        return Source(url=src.url, md5=src.md5, param=f"data.{name}")


def _coerce(value: Any, kind: Any, name: str) -> Any:
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ParamError(f"{name} must be a mapping, got {value!r}")
        return _build(kind, value, name)
    if origin is list:
        if not isinstance(value, list) or not value:
            raise ParamError(f"{name} must be a non-empty list, got {value!r}")
        (item,) = typing.get_args(kind)
        if item is str:
            return [str(v) for v in value]
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if kind == AutoBool:
        if not isinstance(value, bool) and value != "auto":
            raise ParamError(f"{name} must be true, false or auto, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(f"{name} must be a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(kind, types.UnionType):
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
        if not isinstance(value, str):
            raise ParamError(f"{name} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported param type {kind!r}")


def _build(cls: type[T], raw: dict[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ParamError(f"unknown param {where} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in raw:
            kwargs[f.name] = _coerce(raw[f.name], hints[f.name], name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"missing param {name}")
    return cls(**kwargs)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ParamError(message)


def validate(p: Params) -> Params:
    """Range checks that types alone cannot express."""
    from cnnpipe.nets import CLASSIFIER_ARCHS, SR_ARCHS

    for name in ("cifar10", "bsds300"):
        src: DataSource = getattr(p.data, name)
        _require(bool(src.url.strip()), f"data.{name}.url must not be empty")
        md5 = src.md5.strip()
        _require(
            md5 == "" or (len(md5) == 32 and all(c in "0123456789abcdefABCDEF" for c in md5)),
            f"data.{name}.md5 must be 32 hex digits (or empty to print it), got {src.md5!r}",
        )
    _require(p.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {p.device!r}")
    c = p.classifier
    _require(c.arch in CLASSIFIER_ARCHS, f"classifier.arch must be one of {sorted(CLASSIFIER_ARCHS)}, got {c.arch!r}")
    _require(c.width >= 1, f"classifier.width must be >= 1, got {c.width}")
    _require(
        len(c.widths) == 3 and all(w >= 1 for w in c.widths),
        f"classifier.widths must be three positive integers, got {c.widths}",
    )
    _require(c.epochs >= 1, f"classifier.epochs must be >= 1, got {c.epochs}")
    _require(c.batch_size >= 1, f"classifier.batch_size must be >= 1, got {c.batch_size}")
    _require(c.lr > 0, f"classifier.lr must be > 0, got {c.lr}")
    _require(0 <= c.momentum < 1, f"classifier.momentum must be in [0, 1), got {c.momentum}")
    _require(c.weight_decay >= 0, f"classifier.weight_decay must be >= 0, got {c.weight_decay}")
    _require(0 <= c.label_smoothing < 1, f"classifier.label_smoothing must be in [0, 1), got {c.label_smoothing}")
    _require(0 <= c.ema < 1, f"classifier.ema must be in [0, 1), got {c.ema}")
    _require(not (c.ema and c.lookahead), "classifier.ema and classifier.lookahead are alternatives; set one")
    _require(c.norm_lr_scale > 0, f"classifier.norm_lr_scale must be > 0, got {c.norm_lr_scale}")
    _require(0 <= c.warmup < 1, f"classifier.warmup must be in [0, 1), got {c.warmup}")
    _require(c.lr_start >= 0 and c.lr_end >= 0, "classifier.lr_start and classifier.lr_end must be >= 0")
    _require(0 <= c.translate <= 8, f"classifier.translate must be in 0..8 pixels, got {c.translate}")
    _require(0 <= c.cutout < 32, f"classifier.cutout must be in 0..31 pixels, got {c.cutout}")
    _require(c.flip in FLIPS, f"classifier.flip must be one of {', '.join(FLIPS)}, got {c.flip!r}")
    _require(c.whiten_bias_epochs >= 0, f"classifier.whiten_bias_epochs must be >= 0, got {c.whiten_bias_epochs}")
    _require(c.tta in (0, 1, 2), f"classifier.tta must be 0 (none), 1 (flip) or 2 (flip + translate), got {c.tta}")
    _require(c.max_train_images >= 0, f"classifier.max_train_images must be >= 0, got {c.max_train_images}")
    s = p.sr
    _require(s.arch in SR_ARCHS, f"sr.arch must be one of {sorted(SR_ARCHS)}, got {s.arch!r}")
    _require(
        all(k in (2, 3, 4) for k in s.scales) and len(set(s.scales)) == len(s.scales),
        f"sr.scales must be distinct values of 2, 3 and 4, got {s.scales}",
    )
    _require(s.channels >= 2, f"sr.channels must be >= 2, got {s.channels}")
    _require(s.blocks >= 1, f"sr.blocks must be >= 1, got {s.blocks}")
    _require(s.loss in ("l1", "mse"), f"sr.loss must be l1 or mse, got {s.loss!r}")
    _require(s.patch_size >= 4, f"sr.patch_size must be >= 4, got {s.patch_size}")
    _require(s.patches_per_epoch >= s.batch_size, "sr.patches_per_epoch must be >= sr.batch_size")
    _require(s.epochs >= 1, f"sr.epochs must be >= 1, got {s.epochs}")
    _require(s.batch_size >= 1, f"sr.batch_size must be >= 1, got {s.batch_size}")
    _require(s.lr > 0, f"sr.lr must be > 0, got {s.lr}")
    e = p.evaluate
    _require(e.sr_examples >= 1, f"evaluate.sr_examples must be >= 1, got {e.sr_examples}")
    _require(e.sr_crop >= 8, f"evaluate.sr_crop must be >= 8, got {e.sr_crop}")
    for name, folder in e.sr_extra_sets.items():
        _require(Path(folder).is_dir(), f"evaluate.sr_extra_sets.{name}: no folder {folder!r}")
    g = p.dream_gallery
    _require(g.images >= 1 and g.size >= 16, "dream_gallery.images must be >= 1 and dream_gallery.size >= 16")
    _require(g.octaves >= 1 and g.steps >= 1, "dream_gallery.octaves and dream_gallery.steps must be >= 1")
    _require(1 < g.octave_scale <= 4, f"dream_gallery.octave_scale must be in (1, 4], got {g.octave_scale}")
    _require(0 < g.lr <= 1, f"dream_gallery.lr must be in (0, 1], got {g.lr}")
    _require(7 <= p.export.opset <= 23, f"export.opset must be in 7..23, got {p.export.opset}")
    _require(p.export.tolerance > 0, f"export.tolerance must be > 0, got {p.export.tolerance}")
    return p


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamError(f"no {path} in {Path.cwd()}; run stages from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ParamError(f"{path} must hold a mapping at the top level")
    return validate(_build(Params, raw, ""))


def section_with_overrides(cls: type[T], prefix: str, overrides: list[str], path: Path | str = "params.yaml") -> T:
    """One section of ``params.yaml`` (defaults if absent) with ``key=value`` overrides applied, each
    value read as YAML (``bf16=false``, ``scales=[2,3]``) and checked like the pipeline's own params.
    For benchmarks, which explore params without editing the file."""
    path = Path(path)
    raw = dict((yaml.safe_load(path.read_text()) or {}).get(prefix, {})) if path.is_file() else {}
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
