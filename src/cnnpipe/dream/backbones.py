"""Frozen feature extractors for DeepDream: the project's classifier and torchvision ImageNet nets.

A :class:`Backbone` takes RGB in [0, 1], applies its own normalisation, and returns the
activations of named layers, stopping the forward pass as soon as the deepest requested layer
has run (so dreaming at ``features.26`` of VGG19 never computes the classifier head).
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnpipe import paths
from cnnpipe.dream.names import TORCHVISION_BACKBONES
from cnnpipe.errors import CnnpipeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PROBE_SIDE = 512  # no backbone here needs more; probing larger would cost real compute
# Which module's children a bare index (``--layer 26``) counts in.
INDEX_PREFIX = {"vgg19": "features", "classifier": "features", "googlenet": "", "resnet50": ""}


class BackboneError(CnnpipeError):
    """A backbone or layer cannot be loaded or found."""


class _Stop(Exception):
    """Raised from a forward hook once every requested activation is captured."""


@dataclass
class Backbone:
    name: str
    model: nn.Module
    mean: torch.Tensor  # 1×3×1×1, on device
    std: torch.Tensor
    device: torch.device
    classes: list[str] = field(default_factory=list)  # the classifier's class names (its checkpoint's)
    _probed: dict[tuple[str, ...], tuple[int, dict[str, int]]] = field(default_factory=dict, repr=False)
    # Forward hooks live on the shared model: two threads dreaming at once (a server's requests)
    # would catch each other's activations, so one forward pass with hooks runs at a time.
    _hooks: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def layer_names(self) -> list[str]:
        return [name for name, _ in self.model.named_modules() if name]

    def main_layers(self) -> list[str]:
        """The backbone's main sequence (``features.0``, ``features.1``, …): what a person picks from."""
        prefix = INDEX_PREFIX.get(self.name, "")
        parent = self.model.get_submodule(prefix) if prefix else self.model
        return [f"{prefix}.{n}" if prefix else n for n, _ in parent.named_children()]

    def resolve_layer(self, layer: str | int) -> str:
        """A module name, or an index into the backbone's main sequence (``26`` → ``features.26``)."""
        names = self.layer_names()
        text = str(layer)
        if text.isascii() and text.isdigit():  # not "²" (a digit to isdigit, not to int)
            main = self.main_layers()
            if len(text) > 6 or int(text) >= len(main):  # int() refuses over 4300 digits
                raise BackboneError(f"layer index {text[:12]} is out of range: {self.name} has {len(main)} layers")
            return main[int(text)]
        if text not in names:
            close = [n for n in names if text in n][:5] or names[:8]
            raise BackboneError(f"{self.name} has no layer {text!r}; e.g. {', '.join(close)}")
        return text

    def probe(self, layers: list[str]) -> tuple[int, dict[str, int]]:
        """The smallest square input side the forward pass to ``layers`` accepts (pooling and
        kernels need a few pixels), and each layer's channel count. Found once per layer set by a
        binary search of tiny forward passes, so a request can be refused before any work."""
        key = tuple(sorted(layers))
        if key not in self._probed:

            def channels(side: int) -> dict[str, int] | None:
                try:
                    with torch.no_grad():
                        acts = self.activations(torch.zeros(1, 3, side, side, device=self.device), list(key))
                except RuntimeError:  # "Kernel size can't be greater than actual input size" and kin
                    return None
                return {name: int(act.shape[1]) for name, act in acts.items()}

            low, high = 1, MAX_PROBE_SIDE
            found = channels(high)
            if found is None:
                raise BackboneError(f"{self.name} cannot run {', '.join(key)} even at {high}×{high} pixels")
            while low < high:
                middle = (low + high) // 2
                if channels(middle) is None:
                    low = middle + 1
                else:
                    high = middle
            self._probed[key] = (high, found)
        return self._probed[key]

    def activations(self, image: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for N×3×H×W RGB in [0, 1]."""
        captured: dict[str, torch.Tensor] = {}
        wanted = set(layers)

        def hook(name: str):
            def fn(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
                captured[name] = output
                if wanted <= captured.keys():
                    raise _Stop

            return fn

        x = ((image - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with self._hooks:
            handles = [self.model.get_submodule(name).register_forward_hook(hook(name)) for name in wanted]
            try:
                self.model(x)
            except _Stop:
                pass
            finally:
                for handle in handles:
                    handle.remove()
        return captured


def _freeze(name: str, model: nn.Module, mean: tuple, std: tuple, device: torch.device) -> Backbone:
    model = model.eval().requires_grad_(False).to(device).to(memory_format=torch.channels_last)
    as_tensor = lambda v: torch.tensor(v, device=device).view(1, 3, 1, 1)  # noqa: E731
    return Backbone(name=name, model=model, mean=as_tensor(mean), std=as_tensor(std), device=device)


def classifier_backbone(checkpoint: Path, device: torch.device) -> Backbone:
    """The project's trained CIFAR-10 classifier (it normalises its input itself)."""
    from cnnpipe.models.checkpoint import load_classifier

    if not Path(checkpoint).is_file():
        raise BackboneError(f"no classifier checkpoint at {checkpoint}; run `dvc repro train_classifier`")
    model, config = load_classifier(Path(checkpoint))
    backbone = _freeze("classifier", model, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), device)
    backbone.classes = list(config["classes"])
    return backbone


def weights_cache_path(name: str) -> Path:
    """Where torchvision keeps (and looks for) the ImageNet weights of ``name``."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    filename = Path(urllib.parse.urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def torchvision_backbone(name: str, device: torch.device, weights: str = "imagenet", download: bool = True) -> Backbone:
    """A torchvision ImageNet model. ``weights="random"`` only when asked (tests, timing).

    ImageNet weights come from torchvision's cache, or are downloaded when ``download`` is true;
    when neither works the error names the cache path and how to pre-fetch the file.
    """
    import torchvision

    if name not in TORCHVISION_BACKBONES:
        raise BackboneError(
            f"unknown backbone {name!r}; choose classifier or one of {', '.join(TORCHVISION_BACKBONES)}"
        )
    builder = torchvision.models.get_model_builder(name)
    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    if weights == "random":
        model = builder(weights=None, **extra)
    elif weights == "imagenet":
        cached = weights_cache_path(name)
        hint = (
            f"pre-fetch it on a connected machine with "
            f"`python -c \"import torchvision; torchvision.models.{name}(weights='DEFAULT')\"` "
            f"and copy {cached.name} to {cached.parent} (or point TORCH_HOME at a folder holding hub/checkpoints/)"
        )
        if not cached.is_file() and not download:
            raise BackboneError(f"no ImageNet weights for {name} at {cached}; {hint}")
        try:
            model = builder(weights="DEFAULT")
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a truncated file a RuntimeError
            reason = getattr(exc, "reason", exc)
            raise BackboneError(
                f"no ImageNet weights for {name} at {cached} and download failed ({reason}); {hint}"
            ) from None
    else:
        raise BackboneError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    return _freeze(name, model, IMAGENET_MEAN, IMAGENET_STD, device)


def load_backbone(
    name: str,
    device: torch.device,
    weights: str = "imagenet",
    classifier_checkpoint: Path | None = None,
    download: bool = True,
) -> Backbone:
    if name == "classifier":
        return classifier_backbone(classifier_checkpoint or paths.CLASSIFIER_CHECKPOINT, device)
    return torchvision_backbone(name, device, weights=weights, download=download)
