"""The inference core: one object that loads the exported models once and answers classify,
super-resolve and DeepDream requests from raw upload bytes. The BentoML HTTP service and the
gRPC server are thin adapters around it, so validation, pre- and post-processing exist once.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnpipe import __version__, paths
from cnnpipe.data.color import hwc_to_nchw, to_float
from cnnpipe.data.images import center_square, center_square_rgb, encode_png, encode_png_stored
from cnnpipe.dream.backbones import Backbone, BackboneError, load_backbone
from cnnpipe.dream.engine import DreamError, DreamParams, ProgressCallback, dream, validate
from cnnpipe.dream.names import DEFAULT_LAYER
from cnnpipe.dream.presets import PRESETS, DreamRequest, dream_params
from cnnpipe.errors import CnnpipeError
from cnnpipe.explain.attribution import default_layer, gradcam
from cnnpipe.explain.models import Explainable, load_explainable
from cnnpipe.explain.render import heatmap_overlay, rgb_picture
from cnnpipe.explain.style import StyleError, StyleParams, StyleRequest, transfer
from cnnpipe.explain.style import validate as validate_style
from cnnpipe.models import integrity
from cnnpipe.models.integrity import sha256
from cnnpipe.models.upscale import DEFAULT_OVERLAP
from cnnpipe.serve.backends import Loaded, Runtime, open_backend, resolve
from cnnpipe.serve.codec import DecodedImage, RequestError
from cnnpipe.serve.limits import Limits

CLASSIFIER_FILE = paths.CLASSIFIER_ONNX.name
DREAM_CHECKPOINT_FILE = paths.CLASSIFIER_CHECKPOINT.name
EXPLAIN_DISPLAY = 256
"""Side in pixels of the explain overlay PNG."""


class ModelsMissing(CnnpipeError):
    """The exported models are not where the server was told to look."""


def classifier_input(image: DecodedImage, size: int) -> np.ndarray:
    """Centre square crop, then antialiased bilinear resize to the model's input (size×size).

    CIFAR-10 images are whole scenes at 32×32, so the crop keeps the aspect ratio and the
    antialiasing keeps large photos from aliasing. Returns RGB in [0, 1], 3×size×size float32.
    """
    return (center_square(image.rgb, size).clamp(0, 255) / 255.0)[0].numpy().astype(np.float32)


def find_models(models_dir: Path) -> tuple[Path, list[Path]]:
    """The classifier and SR exports in ``models_dir``, or ModelsMissing saying how to make them."""
    classifier_path = Path(models_dir) / CLASSIFIER_FILE
    sr_paths = sorted(Path(models_dir).glob(paths.sr_onnx("*").name))
    if not classifier_path.is_file() or not sr_paths:
        raise ModelsMissing(
            f"no exported models in {Path(models_dir).resolve()} (need {CLASSIFIER_FILE} and sr_x*.onnx): "
            "run `dvc repro export_onnx export_sr` (or `dvc pull`), or set CNNPIPE_MODELS_DIR"
        )
    return classifier_path, sr_paths


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: str
    sha256: str
    provenance: dict[str, Any] | None = None
    """Commit, dirty flag, experiment, params and metrics the export recorded (:mod:`cnnpipe.provenance`);
    None for a model exported before provenance existed."""
    backend: str = ""
    """What runs it (:mod:`cnnpipe.serve.backends`): onnxruntime or torch."""
    device: str = ""
    """Where it runs: cpu or cuda."""
    weights: str = ""
    """The file the backend runs: ``file`` (the ONNX export, which ``sha256`` and ``version`` name)
    or, for torch, the checkpoint it was exported from (checked against the export's record)."""

    @property
    def version(self) -> str:
        return self.sha256[:12]


class InferenceCore:
    """Loads ``models_dir``'s models once, in the backend ``runtime`` names (default: ``auto``, see
    :func:`cnnpipe.serve.backends.resolve`), and the classifier checkpoint for explain and DeepDream.
    Class names, scales and provenance come from the ONNX exports' metadata whichever backend runs."""

    def __init__(
        self,
        models_dir: Path,
        threads: int = 0,
        limits: Limits | None = None,
        dream_backbone: str = "classifier",
        runtime: Runtime | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.limits = limits or Limits()
        self.runtime = runtime or resolve()
        backend = open_backend(self.runtime, threads)
        classifier_path, sr_paths = find_models(self.models_dir)
        checkpoint = self.models_dir / DREAM_CHECKPOINT_FILE
        self.classifier = backend.load(classifier_path, checkpoint, integrity.CLASSIFICATION)
        self.classes: list[str] = list(self.classifier.metadata.get("classes", []))
        self.input_size = int(self.classifier.input_shape[-1])
        self.models = [self._info("classifier", classifier_path, self.classifier)]
        self.sr: dict[int, Loaded] = {}
        self.sr_context: dict[int, int] = {}  # LR receptive-field radius = the tile overlap needed
        for path in sr_paths:
            scale = int(path.stem.removeprefix("sr_x"))  # the export's own scale: check_models sees to it
            checkpoint = self.models_dir / paths.sr_checkpoint(scale).name
            self.sr[scale] = loaded = backend.load(path, checkpoint, integrity.SUPER_RESOLUTION)
            self.sr_context[scale] = int(loaded.metadata.get("context", DEFAULT_OVERLAP))
            self.models.append(self._info(f"sr_x{scale}", path, loaded))
        self.dream_backbone_name = dream_backbone
        self._backbone: Backbone | None = None  # loaded on first DeepDream request (PyTorch)
        self._explainable: Explainable | None = None  # loaded on first explain request (PyTorch)
        self._explain_layer = ""
        self._explain_lock = threading.Lock()

    def _info(self, name: str, path: Path, loaded: Loaded) -> ModelInfo:
        return ModelInfo(
            name,
            path.name,
            sha256(path),
            loaded.metadata.get("provenance"),
            self.runtime.backend,
            loaded.device,
            loaded.weights.name,
        )

    # ------------------------------------------------------------------ metadata

    def metadata(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "scales": sorted(self.sr),
            "models": [{**dataclasses.asdict(m), "version": m.version} for m in self.models],
            "cnnpipe_version": __version__,
            "dream_backbone": self.dream_backbone_name,
            "dream_default_layer": DEFAULT_LAYER.get(self.dream_backbone_name, ""),
            "dream_layers": self.dream_layers(),
            "dream_presets": {name: _preset_fields(p) for name, p in PRESETS.items()},
            "limits": dataclasses.asdict(self.limits),
        }

    # ------------------------------------------------------------------ decoding

    def decode(self, data: bytes, max_pixels: int | None = None) -> DecodedImage:
        return self.limits.decode(data, max_pixels)

    # ------------------------------------------------------------------ classify

    def classify_arrays(self, batch: np.ndarray, top_k: int = 5) -> list[dict[str, Any]]:
        """N×3×H×W float32 inputs → one result per row (one backend call for the batch)."""
        logits = self.classifier.run(np.ascontiguousarray(batch, dtype=np.float32))
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        k = max(1, min(top_k, len(self.classes)))
        results = []
        for row in probs:
            order = np.argsort(-row)[:k]
            results.append(
                {
                    "label": self.classes[int(order[0])],
                    "index": int(order[0]),
                    "top_k": [
                        {"label": self.classes[int(i)], "index": int(i), "probability": float(row[i])} for i in order
                    ],
                    "model_version": self.models[0].version,
                }
            )
        return results

    def classifier_input(self, data: bytes) -> np.ndarray:
        """Validate an upload and turn it into the classifier's input (see :func:`classifier_input`)."""
        return classifier_input(self.decode(data), self.input_size)

    def classify(self, uploads: list[bytes], top_k: int = 5) -> list[dict[str, Any]]:
        """Classify several uploads in one batch; a bad upload raises before any inference."""
        inputs = [self.classifier_input(data) for data in uploads]
        return self.classify_arrays(np.stack(inputs), top_k) if inputs else []

    # ------------------------------------------------------------------ explain

    def _explainer(self) -> Explainable:
        """The classifier's PyTorch checkpoint (Grad-CAM needs gradients; ONNX Runtime has none)."""
        if self._explainable is None:
            path = self.models_dir / DREAM_CHECKPOINT_FILE
            if not path.is_file():
                raise RequestError("unprocessable", f"explain needs {path.name} beside the ONNX models")
            net = load_explainable("classifier", torch.device("cpu"), classifier_checkpoint=path)
            self._explain_layer = default_layer(net.model, torch.zeros(1, 3, net.input_size, net.input_size))
            self._explainable = net
        return self._explainable

    def explain(self, data: bytes, target: int | None = None, top_k: int = 5) -> dict[str, Any]:
        """Top-k (the backend's, as :meth:`classify`) plus Grad-CAM of ``target`` (default: the top
        class) at the classifier's last convolutional group: the raw map (the model's input size,
        [0, 1]) and a PNG of it over the centre square the model saw, at ``EXPLAIN_DISPLAY`` px."""
        image = self.decode(data)
        if target is not None and not 0 <= target < len(self.classes):
            raise RequestError("invalid", f"class must be in 0..{len(self.classes) - 1}, got {target}")
        model_input = classifier_input(image, self.input_size)
        result = self.classify_arrays(model_input[None], top_k)[0]
        chosen = result["index"] if target is None else target
        net = self._explainer()
        with self._explain_lock:  # Captum hooks the shared model: one Grad-CAM at a time
            x = torch.from_numpy(model_input)[None]
            cam = gradcam(net.model, x, chosen, self._explain_layer)
        display = center_square_rgb(image.rgb, EXPLAIN_DISPLAY)
        return {
            **result,
            "target": chosen,
            "target_label": self.classes[chosen],
            "layer": self._explain_layer,
            "map": cam.numpy().round(4).tolist(),
            "overlay_png": encode_png_stored(heatmap_overlay(display, cam)),  # latency over bytes (README)
        }

    # ------------------------------------------------------------------ super-resolution

    def super_resolve(self, data: bytes, scale: int, self_ensemble: bool = False) -> tuple[bytes, int, int]:
        """Upload → (PNG bytes, width, height) upscaled ×``scale``; RGBA and greyscale kept.

        ``self_ensemble``: the mean over the 8 flips and rotations of the input (EDSR+'s; +0.06–0.11
        dB on Set5/Set14, benchmarks/README.md) at 8× the compute, hence its own, smaller size limit.
        """
        from cnnpipe.models.upscale import self_ensemble as ensembled
        from cnnpipe.models.upscale import upscale

        if scale not in self.sr:
            raise RequestError("unprocessable", f"scale {scale} is not available; choose one of {sorted(self.sr)}")
        image = self.decode(data, max_pixels=self.limits.sr_max_output_pixels // (scale * scale))
        width, height = image.width, image.height
        limit = self.limits.sr_self_ensemble_max_output_pixels
        if self_ensemble and width * height * scale * scale > limit:
            raise RequestError(
                "too_large",
                f"image is {width}×{height} = {width * height} pixels; with self_ensemble (8 passes) the ×{scale} "
                f"output may have at most {limit} pixels, so the image at most {limit // (scale * scale)}: "
                "send a smaller image or leave self_ensemble off",
            )
        if image.grey:
            pixels = image.rgb[..., 0]
            layout = pixels if image.alpha is None else np.dstack([np.repeat(pixels[..., None], 3, 2), image.alpha])
        else:
            layout = image.rgb if image.alpha is None else np.dstack([image.rgb, image.alpha])
        luma = ensembled(self.sr[scale].run) if self_ensemble else self.sr[scale].run
        out = upscale(layout, scale, luma, tile=self.limits.sr_tile, overlap=self.sr_context[scale])
        if out.ndim == 2:
            png = encode_png(out[..., None], grey=True)
        else:
            alpha = out[..., 3] if out.shape[-1] == 4 else None
            png = encode_png(out[..., :3], alpha, grey=image.grey)
        return png, out.shape[1], out.shape[0]

    # ------------------------------------------------------------------ DeepDream

    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = load_backbone(
                self.dream_backbone_name,
                torch.device(self.runtime.torch_device),
                classifier_checkpoint=self.models_dir / DREAM_CHECKPOINT_FILE,
                download=False,
            )
        return self._backbone

    def dream_layers(self) -> list[str]:
        """The DeepDream backbone's main layers, or [] where it cannot load (no checkpoint, say)."""
        try:
            return self.backbone().main_layers()
        except CnnpipeError:
            return []

    def dream_plan(self, data: bytes, request: DreamRequest, task: bool = False) -> tuple[DecodedImage, DreamParams]:
        """Everything checked, nothing run: the decoded upload and the :class:`DreamParams` the
        request resolves to, or the :class:`RequestError` that :meth:`deepdream` would raise.
        ``task`` selects the larger limits of the task endpoint."""
        max_pixels = self.limits.dream_task_max_pixels if task else self.limits.dream_sync_max_pixels
        max_steps = self.limits.dream_task_max_steps if task else self.limits.dream_sync_max_steps
        image = self.decode(data, max_pixels=max_pixels)
        try:
            params = dream_params(request, self.dream_backbone_name, max_pixels=max_pixels, max_total_steps=max_steps)
            validate(params, self.backbone(), image.height, image.width)
        except (DreamError, BackboneError) as exc:
            raise RequestError("unprocessable", str(exc)) from None
        return image, params

    def deepdream(
        self, data: bytes, request: DreamRequest, task: bool = False, progress: ProgressCallback | None = None
    ) -> bytes:
        """Upload + :class:`DreamRequest` → PNG (see :meth:`dream_plan`)."""
        image, params = self.dream_plan(data, request, task)
        try:
            out = dream(image.rgb, self.backbone(), params, progress=progress)
        except DreamError as exc:
            raise RequestError("unprocessable", str(exc)) from None
        return encode_png(out, image.alpha)

    # ------------------------------------------------------------------ style transfer

    def style_plan(
        self, content: bytes, style: bytes, request: StyleRequest
    ) -> tuple[DecodedImage, DecodedImage, StyleParams]:
        """Everything checked, nothing run: both uploads decoded and the :class:`StyleParams` the
        request resolves to, or the :class:`RequestError` that :meth:`style_transfer` would raise."""
        limit = self.limits.style_max_pixels
        image, style_image = (
            self.decode(content, max_pixels=limit),
            self.decode(style, max_pixels=self.limits.max_pixels),
        )
        try:
            params = request.params(max_pixels=limit, max_steps=self.limits.style_max_steps)
            validate_style(self.backbone(), params, (image.height, image.width))
        except (StyleError, BackboneError) as exc:
            raise RequestError("unprocessable", str(exc)) from None
        return image, style_image, params

    def style_transfer(
        self, content: bytes, style: bytes, request: StyleRequest, progress: ProgressCallback | None = None
    ) -> bytes:
        """Content and style uploads + :class:`StyleRequest` → PNG at the content's size (its alpha
        kept), with the DeepDream backbone's features (see :meth:`style_plan`)."""
        image, style_image, params = self.style_plan(content, style, request)
        backbone = self.backbone()
        content_input, style_input = (to_float(hwc_to_nchw(i.rgb)).to(backbone.device) for i in (image, style_image))
        try:
            result = transfer(content_input, style_input, backbone, params, progress)
        except StyleError as exc:
            raise RequestError("unprocessable", str(exc)) from None
        return encode_png(rgb_picture(result.image[0].cpu()), image.alpha)


def _preset_fields(p: DreamParams) -> dict[str, Any]:
    return {k: getattr(p, k) for k in ("octaves", "octave_scale", "steps", "lr", "jitter")}
