"""Coverage-guided fuzzing (atheris, i.e. libFuzzer for Python) of every decoder the servers run
on client input: only the project's :class:`~cnnpipe.serve.codec.RequestError` (an HTTP 4xx, a
non-INTERNAL gRPC status) may come out, never another exception.

    python benchmarks/fuzz.py --seconds 300                  # every target, 300 s each
    python benchmarks/fuzz.py --seconds 20 --target decode   # one target

Targets (``TARGETS``):

- ``decode``: upload bytes (seeded with real PNG, JPEG, GIF, BMP, WebP, TIFF and PPM files in
  every mode) through :meth:`Limits.decode`; what decodes must be within the limits.
- ``forms``: the HTTP DeepDream and style-transfer forms, field by field as text, through the
  service's own pydantic models (``serving/forms.py``: a failure there is BentoML's 400) and then
  the inference core, run to the end when accepted.
- ``dream_spec``: layer/channel specs (``features.3:0.5``, indices, mappings) and DeepDream values
  of any type through :func:`dream_params` and the engine's checks (``InferenceCore.dream_plan``),
  dreamt when accepted.
- ``grpc``: messages of every request type, fields set or unset, to a real gRPC server on
  127.0.0.1 (in this process, so its code is instrumented); INTERNAL or UNKNOWN is a failure.
- ``canary``: a planted bug behind a 4-byte magic, to show that the harness finds and reports one
  (tests/test_fuzz.py); blind random inputs would need ~2³² tries.

The models are tiny untrained exports made in-process (:func:`tiny_models`) and the server limits
small (``CORE_LIMITS``) so that an accepted request runs in milliseconds; the code paths are the
servers'. libFuzzer ends its process when it is done, so each target runs in a child process,
which prints ``FUZZ-SUMMARY {json}``: inputs tried, coverage edges (libFuzzer's ``cov``) and
features (``ft``), and failures grouped by exception and place, each with its first input.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Nothing of PIL, cnnpipe or serving is imported at module level: a child process must import them
# inside atheris.instrument_imports(), or their code would not be coverage-instrumented.
INSTRUMENTED = ("PIL", "cnnpipe.serve", "cnnpipe.dream", "cnnpipe.explain.style", "serving.forms")
SUMMARY = "FUZZ-SUMMARY "
FIELD_CHARS = 64 * 1024  # the HTTP server refuses longer form fields before the service sees them
Target = Callable[[Any], None]  # takes the fuzzer's bytes (or its FuzzedDataProvider)


class Broken(AssertionError):
    """An invariant the fuzzer broke: not a RequestError, or an accepted value that is not sane."""


# ---------------------------------------------------------------------------------------- inputs


def seed_images() -> dict[str, bytes]:
    """Small real image files of every accepted format, in the modes clients send."""
    import io

    import numpy as np
    from PIL import Image, features

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    rgba = np.dstack([rgb, grey])
    pictures: dict[str, tuple[Image.Image, str, dict[str, Any]]] = {
        "rgb.png": (Image.fromarray(rgb), "PNG", {}),
        "rgba.png": (Image.fromarray(rgba), "PNG", {}),
        "grey.png": (Image.fromarray(grey), "PNG", {}),
        "la.png": (Image.fromarray(rgba[..., 2:]).convert("LA"), "PNG", {}),
        "16bit.png": (Image.fromarray(grey.astype(np.uint16) * 257), "PNG", {}),
        "palette.png": (Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG", {}),
        "bilevel.png": (Image.fromarray(grey).convert("1"), "PNG", {}),
        "interlaced.png": (Image.fromarray(rgb), "PNG", {"interlace": 1}),
        "baseline.jpg": (Image.fromarray(rgb), "JPEG", {"quality": 80}),
        "progressive.jpg": (Image.fromarray(rgb), "JPEG", {"progressive": True}),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), "JPEG", {}),
        "grey.jpg": (Image.fromarray(grey), "JPEG", {}),
        "rgb.bmp": (Image.fromarray(rgb), "BMP", {}),
        "palette.bmp": (Image.fromarray(rgb).convert("P"), "BMP", {}),
        "rgb.gif": (Image.fromarray(rgb), "GIF", {}),
        "animated.gif": (
            Image.fromarray(rgb),
            "GIF",
            {"save_all": True, "append_images": [Image.fromarray(255 - rgb)], "transparency": 0},
        ),
        "rgb.tiff": (Image.fromarray(rgb), "TIFF", {}),
        "lzw.tiff": (Image.fromarray(rgba), "TIFF", {"compression": "tiff_lzw"}),
        "deflate16.tiff": (
            Image.fromarray(grey.astype(np.uint16) * 257),
            "TIFF",
            {"compression": "tiff_adobe_deflate"},
        ),
        "float.tiff": (Image.fromarray(grey.astype(np.float32) / 255), "TIFF", {}),
        "cmyk.tiff": (Image.fromarray(rgb).convert("CMYK"), "TIFF", {}),
        "rgb.ppm": (Image.fromarray(rgb), "PPM", {}),
        "grey.pgm": (Image.fromarray(grey), "PPM", {}),
    }
    if features.check("webp"):
        pictures["lossy.webp"] = (Image.fromarray(rgb), "WEBP", {"quality": 50})
        pictures["lossless.webp"] = (Image.fromarray(rgba), "WEBP", {"lossless": True})
    files = {}
    for name, (picture, fmt, options) in pictures.items():
        buf = io.BytesIO()
        picture.save(buf, format=fmt, **options)
        files[name] = buf.getvalue()
    return files


def core_images() -> list[bytes]:
    """Uploads for the targets that reach the inference core: some accepted, some too small or large."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    out = []
    for h, w, mode in (
        (40, 40, "RGB"),
        (36, 44, "RGBA"),
        (40, 40, "L"),
        (1, 1, "RGB"),
        (8, 8, "RGB"),
        (120, 90, "RGB"),
    ):
        picture = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


# Text a client may put in a form field or a layer spec, besides random text: edge cases of the
# number parsers, JSON and the names the service knows.
INTERESTING = [
    *("", "null", "None", "true", "false", " ", "0", "-0", "1", "-1", "2", "3", "4", "1.5", "4.0000001", "0.0"),
    *("nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e-400", "1_0", "0x10", " 7 ", "+3", "1e3"),
    *(str(2**31), str(2**32), str(2**63), str(2**63 - 1), str(-(2**63)), str(-(2**63) - 1), str(2**64), str(2**64 - 1)),
    *(
        "[",
        "{",
        "]",
        ",",
        '"',
        "9",
        "[]",
        "{}",
        "[1]",
        '["features.3"]',
        '{"features.3": 1}',
        "[null]",
        '["features.3:nan"]',
    ),
    *("quick", "detailed", "classic", "content", "noise", "features", "features.", "features.3", "features.99", "fc"),
]


def text_of(fdp: Any, names: list[str], depth: int = 0) -> str:
    """A form value: an interesting one, a number, random text, a repetition, or NAME:VALUE."""
    mode = fdp.ConsumeIntInRange(0, 6 if depth == 0 else 3)
    if mode == 0:
        return str(fdp.PickValueInList(INTERESTING + names))
    if mode == 1:
        return str(fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12)))
    if mode == 2:
        return repr(fdp.ConsumeFloat())
    if mode == 3:
        return str(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 24)))
    if mode == 4:  # long repetitions: deep JSON, huge digit strings
        return text_of(fdp, names, depth + 1) * fdp.ConsumeIntInRange(1, 6000)
    if mode == 5:
        return f"{text_of(fdp, names, depth + 1)}:{text_of(fdp, names, depth + 1)}"
    return f"{fdp.PickValueInList(names or ['x'])}{text_of(fdp, names, depth + 1)}"


def value_of(fdp: Any, names: list[str]) -> Any:
    """A value of any type (the CLI's, a YAML file's, a JSON body's): None, bool, int, float, text, list."""
    kind = fdp.ConsumeIntInRange(0, 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-3, 40)
    if kind == 3:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12))
    if kind == 4:
        return fdp.ConsumeFloat()
    if kind == 5:
        return text_of(fdp, names)
    return [value_of(fdp, names) for _ in range(fdp.ConsumeIntInRange(0, 2))]


def upload_of(fdp: Any, images: list[bytes]) -> bytes:
    """An upload: a known image, one with some bytes changed or cut, random bytes, or nothing."""
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 3:
        return b""
    if kind == 2:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256))
    data = bytearray(fdp.PickValueInList(images))
    if kind == 1:
        for _ in range(fdp.ConsumeIntInRange(1, 4)):
            data[fdp.ConsumeIntInRange(0, len(data) - 1)] = fdp.ConsumeIntInRange(0, 255)
        del data[fdp.ConsumeIntInRange(1, len(data)) :]
    return bytes(data)


# ----------------------------------------------------------------------------------- invariants


def check_decoded(image: Any, max_pixels: int) -> None:
    """A decoded upload is what DecodedImage promises, and within the pixel limit."""
    import numpy as np

    from cnnpipe.serve.codec import ACCEPTED_FORMATS

    h, w = image.height, image.width
    if not (h >= 1 and w >= 1 and h * w <= max_pixels):
        raise Broken(f"decoded {w}×{h}, limit {max_pixels} pixels")
    if image.rgb.dtype != np.uint8 or image.rgb.shape != (h, w, 3):
        raise Broken(f"rgb is {image.rgb.dtype} {image.rgb.shape}")
    if image.alpha is not None and (image.alpha.dtype != np.uint8 or image.alpha.shape != (h, w)):
        raise Broken(f"alpha is {image.alpha.dtype} {image.alpha.shape}")
    if image.source_format not in ACCEPTED_FORMATS or not (isinstance(image.frames, int) and image.frames >= 1):
        raise Broken(f"format {image.source_format}, frames {image.frames!r}")


def check_params(params: Any) -> None:
    """Accepted DreamParams / StyleParams hold finite numbers (a NaN or inf weight, step or scale
    makes a NaN image, silently) and a seed torch's generator takes."""
    import torch

    numbers = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    numbers.update({f"layers[{k}]": v for k, v in (getattr(params, "layers", None) or {}).items()})
    for name, value in numbers.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise Broken(f"accepted {name}={value}")
    try:
        torch.Generator().manual_seed(params.seed)
    except (RuntimeError, ValueError, TypeError, OverflowError) as error:
        raise Broken(f"accepted seed {params.seed!r} that torch refuses: {error}") from None


def is_png(data: bytes) -> None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise Broken(f"the result is not a PNG: {data[:16]!r}")


# -------------------------------------------------------------------------------- tiny models

# The servers' limits, small in pixels but with the default steps allowed, so that requests that
# set little are accepted. Every accepted plan is checked (check_params: what the run would choke
# on); those of at most RUN_STEPS steps are also run to the end (milliseconds on a few thousand
# pixels). The gRPC target's streams run whatever is accepted, so it sets steps itself.
RUN_STEPS = 4
CORE_LIMITS = dict(
    max_upload_bytes=1 << 20,
    max_pixels=96 * 96,
    sr_max_output_pixels=160 * 160,
    sr_self_ensemble_max_output_pixels=80 * 80,  # below the single pass's, so both refusals are reached
    dream_sync_max_pixels=48 * 48,
    dream_sync_max_steps=2,
    dream_task_max_pixels=64 * 64,
    dream_task_max_steps=30,  # the quick preset (3 octaves × 10 steps) is accepted
    style_max_pixels=48 * 48,
    style_max_steps=200,  # the default steps are accepted
)


def tiny_models(directory: Path) -> Path:
    """Untrained tiny exports in the servers' layout (classifier.onnx + .pt, sr_x2.onnx, sr_x3.onnx),
    through the pipeline's own ONNX export; seconds on a CPU. Kept if already there."""
    import torch

    from cnnpipe.data.cifar10 import CLASSES
    from cnnpipe.export.onnx import SR_DYNAMIC_AXES, export
    from cnnpipe.models.checkpoint import build_classifier, build_sr, save_checkpoint

    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "sr_x3.onnx").is_file():
        return directory
    torch.manual_seed(0)
    config = {"arch": "airbench", "classes": list(CLASSES), "widths": [8, 16, 16]}
    classifier = build_classifier(config)
    save_checkpoint(directory / "classifier.pt", classifier, config)
    meta: dict[str, Any] = {"task": "classification", "classes": CLASSES}  # as stages/export_onnx.py writes
    export(classifier, torch.rand(2, 3, 32, 32), directory / "classifier.onnx", {0: "batch"}, 18, meta)
    for scale in (2, 3):
        sr = build_sr({"arch": "espcn", "scale": scale, "channels": 8})
        meta = {"task": "super_resolution", "scale": scale, "context": sr.context}
        export(sr, torch.rand(2, 1, 24, 24), directory / f"sr_x{scale}.onnx", SR_DYNAMIC_AXES, 18, meta)
    return directory


def _core(models: Path, **limits: int) -> Any:
    from cnnpipe.serve.core import InferenceCore
    from cnnpipe.serve.limits import Limits

    return InferenceCore(models, threads=1, limits=Limits(**{**CORE_LIMITS, **limits}), dream_backbone="classifier")


# ------------------------------------------------------------------------------------ targets


def decode_target(models: Path, workdir: Path) -> Target:
    from cnnpipe.serve.codec import RequestError
    from cnnpipe.serve.limits import Limits

    limits = Limits(max_upload_bytes=256 * 1024, max_pixels=256 * 256)

    def one(data: bytes) -> None:
        try:
            image = limits.decode(data)
        except RequestError:
            return
        check_decoded(image, limits.max_pixels)

    return one


def forms_target(models: Path, workdir: Path) -> Target:
    import atheris
    from pydantic import ValidationError

    from cnnpipe.serve.codec import RequestError
    from serving.forms import DreamFields, StyleFields, dream_form, style_form

    core = _core(models)
    names = core.dream_layers()
    images = core_images()
    uploads = [workdir / "image.bin", workdir / "style.bin"]

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        kind = fdp.PickValueInList(["deepdream", "deepdream_task", "style_transfer"])
        spec = StyleFields if kind == "style_transfer" else DreamFields
        for path in uploads:
            path.write_bytes(upload_of(fdp, images))
        form: dict[str, Any] = {"image": uploads[0], "style": uploads[1]}
        for name in spec.model_fields:
            if name not in form and fdp.ConsumeIntInRange(0, 3) == 0:  # a few fields, so the rest can be valid
                form[name] = text_of(fdp, names)[:FIELD_CHARS]
        try:
            fields = spec.model_validate(form)  # as BentoML validates the multipart form: a 400
        except ValidationError:
            return
        given = {k: getattr(fields, k) for k in spec.model_fields}  # what BentoML passes the method
        try:
            if kind == "style_transfer":
                content, style, style_request = style_form(given)
                _, _, style_params = core.style_plan(content.read_bytes(), style.read_bytes(), style_request)
                check_params(style_params)
                if style_params.steps <= RUN_STEPS:
                    is_png(core.style_transfer(content.read_bytes(), style.read_bytes(), style_request))
            else:
                upload, request = dream_form(given)
                task = kind == "deepdream_task"
                _, params = core.dream_plan(upload.read_bytes(), request, task=task)
                check_params(params)
                if params.octaves * params.steps <= RUN_STEPS:
                    is_png(core.deepdream(upload.read_bytes(), request, task=task))
        except RequestError:
            return

    return one


def dream_spec_target(models: Path, workdir: Path) -> Target:
    import atheris

    from cnnpipe.dream.presets import DreamRequest
    from cnnpipe.serve.codec import RequestError

    core = _core(models)
    names = core.dream_layers()
    image = core_images()[0]

    def layers_of(fdp: Any) -> Any:
        kind = fdp.ConsumeIntInRange(0, 3)
        if kind == 0:
            return None
        if kind == 1:  # the servers' and the CLI's form: NAME, index or NAME:WEIGHT strings
            return [text_of(fdp, names) for _ in range(fdp.ConsumeIntInRange(1, 3))]
        if kind == 2:  # the gallery's params: a mapping name → weight of any type
            return {text_of(fdp, names): value_of(fdp, names) for _ in range(fdp.ConsumeIntInRange(1, 3))}
        return text_of(fdp, names)  # a str is a Sequence[str] too: its letters

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        channels = [value_of(fdp, names) for _ in range(fdp.ConsumeIntInRange(0, 3))]
        request = DreamRequest(
            preset=fdp.PickValueInList([None, "quick", "classic", text_of(fdp, names)]),
            layers=layers_of(fdp),
            channels=channels if fdp.ConsumeBool() else [fdp.ConsumeIntInRange(-2, 40) for _ in channels],
            **{
                name: value_of(fdp, names) if fdp.ConsumeBool() else None
                for name in ("octaves", "octave_scale", "steps", "lr", "jitter", "smoothing", "seed")
            },
        )
        try:
            _, params = core.dream_plan(image, request, task=True)
            check_params(params)
            if params.octaves * params.steps <= RUN_STEPS:
                is_png(core.deepdream(image, request, task=True))
        except RequestError:
            return

    return one


def grpc_target(models: Path, workdir: Path) -> Target:
    import logging

    import atheris
    import grpc

    from cnnpipe.serve.grpc_server import GrpcSettings, Server
    from cnnpipe.serve.v1 import inference_pb2 as pb
    from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc

    core = _core(models, dream_task_max_steps=RUN_STEPS, style_max_steps=RUN_STEPS // 2)  # streams run what passes
    names = core.dream_layers()
    images = core_images()
    failures: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info:
                failures.append(record)

    log = logging.getLogger("cnnpipe.grpc")
    log.setLevel(logging.ERROR)  # refusals are INFO lines: thousands a second here
    log.propagate = False
    log.addHandler(Keep())
    server = Server(core, GrpcSettings(host="127.0.0.1", port=0, workers=4, dream_slots=2, grace_seconds=0))
    server.start()
    stub = pb_grpc.InferenceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))

    def optional(fdp: Any, message: Any, name: str, value: Callable[[], Any]) -> None:
        if fdp.ConsumeBool():
            setattr(message, name, value())

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        method = fdp.ConsumeIntInRange(0, 5)
        u32 = lambda: fdp.ConsumeIntInRange(0, 2**32 - 1) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 12)  # noqa: E731
        image = upload_of(fdp, images)
        if method == 0:
            call, request = stub.Classify, pb.ClassifyRequest(image=image, top_k=u32())
        elif method == 1:
            call, request = stub.Explain, pb.ExplainRequest(image=image)
            optional(fdp, request, "target", u32)
        elif method == 2:
            call, request = stub.SuperResolve, pb.SuperResolveRequest(image=image, scale=u32())
            optional(fdp, request, "self_ensemble", fdp.ConsumeBool)
        elif method == 3:
            call, request = stub.GetMetadata, pb.GetMetadataRequest()
        elif method == 4:
            call = stub.DeepDream
            request = pb.DeepDreamRequest(image=image, preset=fdp.PickValueInList(["", "quick", text_of(fdp, names)]))
            request.layers.extend(text_of(fdp, names) for _ in range(fdp.ConsumeIntInRange(0, 2)))
            for name in ("octaves", "steps", "jitter"):
                optional(fdp, request, name, u32)
            for name in ("octave_scale", "lr"):
                optional(fdp, request, name, fdp.ConsumeFloat)
            optional(fdp, request, "seed", lambda: fdp.ConsumeIntInRange(-(2**63), 2**63 - 1))
        else:
            call = stub.StyleTransfer
            request = pb.StyleTransferRequest(image=image, style=upload_of(fdp, images), init=text_of(fdp, ["noise"]))
            optional(fdp, request, "steps", u32)
            for name in ("content_weight", "style_weight"):
                optional(fdp, request, name, fdp.ConsumeFloat)
            optional(fdp, request, "seed", lambda: fdp.ConsumeIntInRange(-(2**63), 2**63 - 1))
        failures.clear()
        try:
            answer = call(request, timeout=60)
            if method in (4, 5):
                last = list(answer)[-1]
                is_png(last.png)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED):
                if failures and failures[-1].exc_info:
                    raise failures[-1].exc_info[1] from None  # the server's exception, with its place
                raise Broken(f"{type(request).__name__}: {code.name}: {error.details()}") from None  # type: ignore[attr-defined]

    return one


def canary_target(models: Path, workdir: Path) -> Target:
    """A planted bug: KeyError for inputs starting ``FUZZ``, one byte compared at a time."""

    def one(data: bytes) -> None:
        if data[:1] == b"F" and data[1:2] == b"U" and data[2:3] == b"Z" and data[3:4] == b"Z":
            raise KeyError("planted")

    import atheris

    return atheris.instrument_func(one)


TARGETS: dict[str, Callable[[Path, Path], Target]] = {
    "decode": decode_target,
    "forms": forms_target,
    "dream_spec": dream_spec_target,
    "grpc": grpc_target,
    "canary": canary_target,
}
NEEDS_MODELS = {"forms", "dream_spec", "grpc"}


# ------------------------------------------------------------------------------- the child


@dataclass
class Tally:
    """Inputs tried and failures by kind (exception type and innermost place), with a reproducer."""

    inputs: int = 0
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, error: BaseException, data: bytes) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        ours = [f for f in frames if "/site-packages/" not in f.filename] or frames
        place = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        key = f"{type(error).__name__} at {place}" + (f" (raised in {where})" if where != place else "")
        entry = self.failures.setdefault(key, {"count": 0, "message": str(error)[:300]})
        entry["count"] += 1
        if entry["count"] == 1:
            entry["input_b64"] = base64.b64encode(data[:65536]).decode()
            print(f"FUZZ-FAILURE {key}: {entry['message']}", file=sys.stderr, flush=True)


def child(target: str, seconds: float, seed: int, models: Path, workdir: Path) -> None:
    """Fuzz one target for ``seconds`` and print its summary; never returns (libFuzzer exits)."""
    import atheris

    workdir.mkdir(parents=True, exist_ok=True)
    corpus = workdir / f"corpus-{target}"
    corpus.mkdir(exist_ok=True)
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        from PIL import Image

        Image.init()  # every format plugin, imported (and so instrumented) now
        make = TARGETS[target](models, workdir)
        if target == "decode":
            for name, data in seed_images().items():
                (corpus / name).write_bytes(data)
    tally = Tally()
    deadline = time.monotonic() + seconds

    def finish() -> None:
        print(SUMMARY + json.dumps({"target": target, "inputs": tally.inputs, "failures": tally.failures}), flush=True)
        sys.stderr.flush()
        os._exit(0)

    def one(data: bytes) -> None:
        if time.monotonic() > deadline:
            finish()
        tally.inputs += 1
        try:
            make(data)
        except Exception as error:  # everything but RequestError is a finding: keep it, go on
            tally.record(error, data)

    args = [sys.argv[0], f"-seed={seed}", f"-max_total_time={int(seconds) + 60}", "-timeout=60"]
    args += ["-rss_limit_mb=4096", "-print_pcs=0", f"-artifact_prefix={workdir}/", str(corpus)]
    atheris.Setup(args, one)
    atheris.Fuzz()


# ------------------------------------------------------------------------------- the parent


@dataclass
class Result:
    target: str
    seconds: float
    inputs: int
    edges: int  # libFuzzer's cov: distinct edges of the instrumented code reached
    features: int  # libFuzzer's ft: edges × hit-count buckets, compares, …
    corpus: int
    failures: dict[str, dict[str, Any]]
    log: str

    @property
    def failure_count(self) -> int:
        return sum(entry["count"] for entry in self.failures.values())


def fuzz(target: str, seconds: float, models: Path | None = None, seed: int = 1, workdir: Path | None = None) -> Result:
    """Run one target in a child process for ``seconds`` (plus its start-up) and collect its counts."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"cnnpipe-fuzz-{target}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if target in NEEDS_MODELS and models is None:
        models = tiny_models(workdir / "models")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", target, "--seconds", str(seconds)]
    command += ["--seed", str(seed), "--workdir", str(workdir), "--models", str(models or workdir)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300, env=env, cwd=workdir)
    elapsed = time.monotonic() - started
    summary = next((line[len(SUMMARY) :] for line in proc.stdout.splitlines() if line.startswith(SUMMARY)), None)
    stats = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", proc.stderr)
    edges, features, corpus = (int(x) for x in stats[-1]) if stats else (0, 0, 0)
    if summary is None:  # libFuzzer stopped the child: a crash it caught (out of memory, a hang, a signal)
        failures = {f"child exited {proc.returncode}": {"count": 1, "message": proc.stderr[-2000:]}}
        return Result(target, elapsed, 0, edges, features, corpus, failures, proc.stderr)
    data = json.loads(summary)
    return Result(target, elapsed, data["inputs"], edges, features, corpus, data["failures"], proc.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="fuzzing time per target")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all but canary")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=sorted(TARGETS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--models", type=Path, help="exported models (default: tiny ones made here)")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.seconds, args.seed, args.models, args.workdir)
    from cnnpipe.device import describe_hardware

    print(describe_hardware())
    print(f"atheris/libFuzzer, {args.seconds:g} s per target, seed {args.seed}; limits {CORE_LIMITS}")
    workdir = Path(tempfile.mkdtemp(prefix="cnnpipe-fuzz-"))
    models = args.models or tiny_models(workdir / "models")
    columns = ("seconds", 8), ("inputs", 9), ("inputs/s", 9), ("edges", 6), ("features", 8), ("corpus", 6)
    columns += (("failures", 8),)
    print(f"{'target':<11}" + "".join(f" {name:>{width}}" for name, width in columns))
    results = []
    for target in args.target or [t for t in TARGETS if t != "canary"]:
        r = fuzz(target, args.seconds, models, args.seed, workdir / target)
        results.append(r)
        rate = r.inputs / max(r.seconds, 1e-9)
        print(
            f"{r.target:<11} {r.seconds:8.1f} {r.inputs:9d} {rate:9.1f} {r.edges:6d} {r.features:8d} {r.corpus:6d} "
            f"{r.failure_count:8d}",
            flush=True,
        )
    for r in results:
        for key, entry in r.failures.items():
            print(f"\n{r.target}: {entry['count']} × {key}\n  {entry['message']}")
            if "input_b64" in entry:
                print(f"  first input (base64): {entry['input_b64'][:400]}")
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
