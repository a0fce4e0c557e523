"""The ``cnnpipe`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnpipe import __version__, paths
from cnnpipe.compare.report import FORMATS
from cnnpipe.data.sample import SAMPLE_SIZES, write_archives
from cnnpipe.dream.names import DEFAULT_LAYER, DEFAULT_PRESET, PRESET_NAMES, TORCHVISION_BACKBONES
from cnnpipe.errors import CnnpipeError, exit_on_user_error
from cnnpipe.explain.names import METHODS as EXPLAIN_METHODS

if TYPE_CHECKING:  # torch loads lazily: `cnnpipe --help` stays fast
    import numpy as np
    import torch

    from cnnpipe.explain.models import Explainable


def sample_data(args: argparse.Namespace) -> None:
    written = write_archives(Path(args.out_dir), SAMPLE_SIZES[args.size])
    if args.dvc_set_args:
        args_ = (
            f"-S {shlex.quote(f'data.{name}.url={path}')} -S data.{name}.md5={md5}"
            for name, (path, md5) in written.items()
        )
        print(" ".join(args_))
        return
    for name, (path, md5) in written.items():
        print(f"{path}  md5 {md5}  (params: data.{name}.url / data.{name}.md5)")


def dream_command(args: argparse.Namespace) -> None:
    from cnnpipe.data.images import read_rgb, write_png
    from cnnpipe.dream.backbones import load_backbone
    from cnnpipe.dream.engine import dream
    from cnnpipe.dream.presets import DreamRequest, dream_params
    from cnnpipe.progress import progress

    image = read_rgb(Path(args.input))
    params = dream_params(  # checked before a backbone is loaded (or downloaded)
        DreamRequest.of(args),
        args.backbone,
        max_pixels=args.max_pixels,
        max_total_steps=args.max_total_steps,
        tile_size=args.tile_size,
    )
    backbone = load_backbone(args.backbone, **_loading(args))
    with progress(total=params.octaves * params.steps, desc="dream", unit="step") as bar:

        def advance(_progress: object) -> None:  # returns None: never cancels
            bar.update(1)

        result = dream(image, backbone, params, progress=advance)
    write_png(Path(args.output), result)
    print(f"wrote {args.output}")


def _loading(args: argparse.Namespace) -> dict[str, Any]:
    """How the model arguments (``--device``, ``--weights``, ``--classifier``, ``--no-download``)
    ask :func:`~cnnpipe.dream.backbones.load_backbone` and ``load_explainable`` to load a net."""
    from cnnpipe.device import pick_device

    return {
        "device": pick_device(args.device),
        "weights": args.weights,
        "classifier_checkpoint": Path(args.classifier),
        "download": not args.no_download,
    }


def _explainable(args: argparse.Namespace) -> Explainable:
    from cnnpipe.explain.models import load_explainable

    return load_explainable(args.backbone, **_loading(args))


def _square_input(path: str, size: int, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """The image as the nets see it (centre square, antialiased resize, [0, 1]) and as people see
    it (the same square at ``DISPLAY`` px)."""
    from cnnpipe.data.images import center_square, center_square_rgb, read_rgb

    rgb = read_rgb(Path(path))
    model_input = (center_square(rgb, size) / 255).clamp(0, 1).to(device)
    display = center_square_rgb(rgb, DISPLAY)
    return model_input, display


DISPLAY = 256
"""Side in pixels of the pictures the look-inside commands write."""


def explain_command(args: argparse.Namespace) -> None:
    from cnnpipe.data.images import write_png
    from cnnpipe.explain.attribution import explain
    from cnnpipe.explain.render import gradient_image, heatmap_overlay, upscale_nearest

    net = _explainable(args)
    image, display = _square_input(args.input, net.input_size, next(net.model.parameters()).device)
    try:
        result = explain(net.model, image, args.method, target=args.target, layer=args.layer)
    except ValueError as error:
        raise CnnpipeError(str(error)) from None
    if result.gradient is not None:
        picture = upscale_nearest(gradient_image(result.gradient.cpu()), max(1, DISPLAY // net.input_size))
    else:
        assert result.cam is not None
        picture = heatmap_overlay(display, result.cam.cpu())
    write_png(Path(args.output), picture)
    name = net.classes[result.target]  # one name per logit (torchvision nets: the index)
    where = f" at layer {result.layer}" if result.layer else ""
    print(f"{args.method} of class {result.target} ({name}, p={float(result.probabilities[result.target]):.3f}){where}")
    print(f"wrote {args.output}")


def filters_command(args: argparse.Namespace) -> None:
    from cnnpipe.data.images import write_png
    from cnnpipe.explain.features import first_conv
    from cnnpipe.explain.render import filter_grid

    net = _explainable(args)
    name, conv = first_conv(net.model)
    write_png(Path(args.output), filter_grid(conv.weight.cpu()))
    print(f"{conv.out_channels} filters of {name} ({conv.kernel_size[0]}×{conv.kernel_size[1]}); wrote {args.output}")


def activations_command(args: argparse.Namespace) -> None:
    from cnnpipe.data.images import write_png
    from cnnpipe.explain.attribution import spatial_layers
    from cnnpipe.explain.features import activations
    from cnnpipe.explain.render import activation_grid

    net = _explainable(args)
    image, _ = _square_input(args.input, net.input_size, next(net.model.parameters()).device)
    layer = args.layer
    if layer is None:
        layer = spatial_layers(net.model, image)[0]
    try:
        maps = activations(net.model, image, layer)
    except ValueError as error:
        layers = spatial_layers(net.model, image)
        known = ", ".join(layers[:12]) + (f", … ({len(layers)} in all)" if len(layers) > 12 else "")
        raise CnnpipeError(f"{error}; layers with a feature map: {known}") from None
    write_png(Path(args.output), activation_grid(maps.cpu(), max_channels=args.channels))
    shown, size = min(args.channels, maps.shape[1]), f"{maps.shape[2]}×{maps.shape[3]}"
    print(f"{layer}: {maps.shape[1]} channels of {size} (showing {shown}); wrote {args.output}")


def _target_index(text: str, classes: list[str], layer: str | None) -> int:
    """A class name or index (a channel index when maximising a layer)."""
    if text.lstrip("-").isdigit():
        return int(text)
    if layer is None and text in classes:
        return classes.index(text)
    known = f"; classes: {', '.join(classes)}" if layer is None and len(classes) <= 20 else ""
    raise CnnpipeError(f"{text!r} is not a class {'name or index' if layer is None else 'channel index'}{known}")


def visualize_class_command(args: argparse.Namespace) -> None:
    from cnnpipe.data.images import write_png
    from cnnpipe.explain.maximize import MaximizeParams, Objective, maximize, robustness, validate
    from cnnpipe.explain.render import rgb_picture, upscale_nearest
    from cnnpipe.progress import progress

    params = MaximizeParams(
        steps=args.steps,
        lr=args.lr,
        size=args.size,
        parametrization=args.parametrization,
        init=args.init,
        samples=args.samples,
        seed=args.seed,
    )
    net = _explainable(args)
    target = _target_index(args.target, net.classes, args.layer)
    objective = Objective((target,), args.layer)
    validate(net.model, objective, params, net.input_size)  # refused before a progress bar is drawn
    with progress(total=params.steps, desc="visualize", unit="step") as bar:
        image = maximize(net.model, objective, net.input_size, params, progress=lambda _p: bar.update(1))
    write_png(Path(args.output), upscale_nearest(rgb_picture(image[0].cpu()), max(1, DISPLAY // image.shape[-1])))
    if args.layer is None:
        check = robustness(net.model, image, (target,), net.input_size)[0]
        print(
            f"class {target} ({net.classes[target]}): p={check.clean:.3f}; shifted ±4 px, flipped, rescaled 0.9-1.1: "
            f"worst p={check.worst:.3f}, mean {check.mean:.3f}"
        )
    print(f"wrote {args.output}")


def style_command(args: argparse.Namespace) -> None:
    from cnnpipe.data.color import hwc_to_nchw, to_float
    from cnnpipe.data.images import read_rgb, write_png
    from cnnpipe.dream.backbones import load_backbone
    from cnnpipe.explain.render import rgb_picture
    from cnnpipe.explain.style import StyleParams, as_layers, transfer, validate
    from cnnpipe.progress import progress

    params = StyleParams(
        steps=args.steps,
        lr=args.lr,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        content_layer=args.content_layer,
        style_layers=as_layers(args.style_layers),
        init=args.init,
        seed=args.seed,
        max_pixels=args.max_pixels,
    )
    content_rgb, style_rgb = read_rgb(Path(args.content)), read_rgb(Path(args.style))
    backbone = load_backbone(args.backbone, **_loading(args))
    content, style = (to_float(hwc_to_nchw(rgb)).to(backbone.device) for rgb in (content_rgb, style_rgb))
    validate(backbone, params, (content.shape[-2], content.shape[-1]))  # refused before a progress bar is drawn
    with progress(total=params.steps, desc="style", unit="step") as bar:
        result = transfer(content, style, backbone, params, progress=lambda _p: bar.update(1))
    write_png(Path(args.output), rgb_picture(result.image[0].cpu()))
    print(
        f"content loss {result.content_losses[0]:.4g} → {result.content_losses[-1]:.4g}, "
        f"style loss {result.style_losses[0]:.4g} → {result.style_losses[-1]:.4g}"
    )
    print(f"wrote {args.output}")


def serve_grpc_command(args: argparse.Namespace) -> None:
    from cnnpipe.serve.auth import load_token
    from cnnpipe.serve.backends import resolve
    from cnnpipe.serve.core import InferenceCore
    from cnnpipe.serve.grpc_server import GrpcSettings, serve
    from cnnpipe.serve.limits import Limits
    from cnnpipe.serve.memory import limit_malloc_arenas
    from cnnpipe.serve.model_check import check_models

    limit_malloc_arenas()  # before the server's threads exist
    runtime = resolve(args.backend, args.device)  # a bad value or a missing GPU: one line, before any work
    limits = Limits.from_env()
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CnnpipeError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise CnnpipeError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = [Path(p) if p else None for p in (args.tls_cert, args.tls_key, args.tls_client_ca)]
    for path in filter(None, tls):
        if not path.is_file():
            raise CnnpipeError(f"no such file {path}")
    settings = GrpcSettings(
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_message_bytes=args.max_message_mb * 1024 * 1024,
        dream_slots=args.dream_slots,
        grace_seconds=args.grace,
        token=load_token(),
        tls_cert=tls[0],
        tls_key=tls[1],
        tls_client_ca=tls[2],
    )
    check_models(Path(args.models), runtime.backend)  # a damaged model stops the start with one line
    torch_threads(args.threads)
    core = InferenceCore(
        Path(args.models),
        threads=args.threads,
        limits=limits,
        dream_backbone=args.dream_backbone,
        runtime=runtime,
    )
    serve(core, settings)
    # Drained and stopped: leave without the interpreter's teardown, where torch's and gRPC's
    # native thread pools abort the process (SIGABRT, "terminate called without an active
    # exception") if a cancelled call's thread is still inside them: seen once in a CI run.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def compare_command(args: argparse.Namespace) -> None:
    from cnnpipe.atomic import write_bytes
    from cnnpipe.compare.report import render
    from cnnpipe.compare.runs import repo_runs, server_run, short_sha
    from cnnpipe.compare.table import comparison
    from cnnpipe.serve.auth import load_token

    if args.num is not None and args.num < 1:
        raise CnnpipeError(f"-n must be at least 1, got {args.num}")
    num = -1 if args.all_commits else (args.num or 10)
    runs, notes = repo_runs(
        Path(args.repo), revs=args.revs or None, num=num, experiments=args.exp, curves=args.format == "html"
    )
    if args.server:
        runs.append(server_run(args.server, token=load_token()))
    labels = {run.label for run in runs}
    baseline = args.baseline
    if baseline and baseline not in labels:
        baseline = short_sha(Path(args.repo), baseline) or baseline
    table, base = comparison(runs, baseline=baseline, per_class=args.per_class, params=args.params or ())
    text = render(
        table, base, args.format, notes, wide=args.wide, transpose=args.transpose, curves=[r.curves for r in runs]
    )
    if args.out:
        write_bytes(Path(args.out), text.encode())
        print(f"wrote {args.out} ({len(table)} runs)")
    else:
        print(text, end="")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def torch_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnpipe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cnnpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "sample-data",
        help="write generated sample archives (official CIFAR-10 binary / BSDS300 layouts)",
        description="Write cifar-10-binary.tar.gz and BSDS300-images.tgz with synthetic images "
        "in the official layouts, for offline runs. They are NOT the real datasets.",
    )
    p.add_argument("out_dir")
    p.add_argument("--size", choices=sorted(SAMPLE_SIZES), default="demo")
    p.add_argument("--dvc-set-args", action="store_true", help="print `dvc exp run -S` arguments")
    p.set_defaults(func=sample_data)

    d = sub.add_parser(
        "dream", help="DeepDream an image", description="Amplify what a network's layers see in an image."
    )
    d.add_argument("input", help="input image (any format Pillow reads)")
    d.add_argument("output", help="output PNG")
    d.add_argument("--backbone", default="vgg19", help="classifier (the project's) | vgg19 | googlenet | resnet50")
    d.add_argument(
        "--layer",
        dest="layers",
        action="append",
        default=None,
        help="layer name or index, optionally NAME:WEIGHT; repeat for several (default: "
        + ", ".join(f"{b}: {layer}" for b, layer in DEFAULT_LAYER.items())
        + ")",
    )
    d.add_argument(
        "--channel", dest="channels", type=int, action="append", default=None, help="only this channel (repeatable)"
    )
    d.add_argument(
        "--preset", choices=list(PRESET_NAMES), default=None, help=f"settings to start from (default {DEFAULT_PRESET})"
    )
    d.add_argument("--octaves", type=int, default=None, help="octave pyramid levels (default: the preset's)")
    d.add_argument("--octave-scale", type=float, default=None, help="size ratio between octaves")
    d.add_argument("--steps", type=int, default=None, help="gradient steps per octave")
    d.add_argument("--lr", type=float, default=None, help="step size: lr / mean|grad|")
    d.add_argument("--jitter", type=int, default=None, help="max random roll in pixels per step")
    d.add_argument("--smoothing", type=float, default=None, help="gradient blur sigma in pixels")
    d.add_argument("--seed", type=int, default=None)
    d.add_argument("--tile-size", type=int, default=None, help="gradients on tiles at most this big")
    d.add_argument("--max-pixels", type=int, default=None, help="refuse larger images")
    d.add_argument("--max-total-steps", type=int, default=None, help="refuse more octaves × steps")
    d.add_argument("--weights", choices=["imagenet", "random"], default="imagenet")
    d.add_argument("--no-download", action="store_true", help="use only cached ImageNet weights")
    d.add_argument(
        "--classifier", default=str(paths.CLASSIFIER_CHECKPOINT), help="checkpoint for --backbone classifier"
    )
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    d.set_defaults(func=dream_command)

    for command, helptext, func in (
        ("explain", "where the evidence for a class lies (Grad-CAM, guided backprop, deconvnet)", explain_command),
        ("filters", "the first convolution's filters as a picture", filters_command),
        ("activations", "one image's activation maps at a layer", activations_command),
    ):
        e = sub.add_parser(command, help=helptext, description=helptext)
        if command != "filters":
            e.add_argument("input", help="input image (any format Pillow reads)")
        e.add_argument("output", help="output PNG")
        if command == "explain":
            e.add_argument("--method", choices=EXPLAIN_METHODS, default="gradcam")
            e.add_argument("--class", dest="target", type=int, default=None, help="class index (default: predicted)")
            e.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last with a spatial output)")
        if command == "activations":
            e.add_argument("--layer", default=None, help="module name (default: the first with a feature map)")
            e.add_argument("--channels", type=int, default=64, help="show at most this many channels")
        _model_arguments(e)
        e.set_defaults(func=func)

    v = sub.add_parser(
        "visualize-class",
        help="an image optimised to be a class (or to drive a layer's channel), readable not adversarial",
        description="Class maximisation (Olah et al. 2017): a 1/f Fourier image in decorrelated colour, "
        "optimised with random jitter, rescale, rotation and flips each step; prints how robustly the "
        "result is its class under a ±4 px shift, a flip and a 0.9-1.1 rescale.",
    )
    v.add_argument("target", metavar="CLASS", help="class name or index (with --layer: a channel index)")
    v.add_argument("output", help="output PNG")
    v.add_argument("--layer", default=None, help="maximise channel CLASS of this layer instead of a class logit")
    v.add_argument("--steps", type=int, default=256)
    v.add_argument("--lr", type=float, default=0.05)
    v.add_argument("--size", type=int, default=None, help="side of the optimised image (default: the model's input)")
    v.add_argument("--parametrization", choices=["fourier", "pixel"], default="fourier")
    v.add_argument("--init", choices=["noise", "black"], default="noise", help="start from noise or from black")
    v.add_argument("--samples", type=int, default=4, help="random views scored per step")
    v.add_argument("--seed", type=int, default=0)
    _model_arguments(v)
    v.set_defaults(func=visualize_class_command)

    st = sub.add_parser(
        "style",
        help="neural style transfer: CONTENT painted in the style of STYLE (Gatys et al. 2016)",
        description="Optimises an image whose features match CONTENT's at one layer and whose Gram "
        "matrices match STYLE's at several (VGG19: content relu4_2, style relu1_1..relu5_1).",
    )
    st.add_argument("content", help="content image")
    st.add_argument("style", help="style image (scaled so its short side is the content's)")
    st.add_argument("output", help="output PNG, the content's size")
    st.add_argument("--steps", type=int, default=200)
    st.add_argument("--lr", type=float, default=0.02, help="Adam step on [0, 1] pixels")
    st.add_argument("--content-weight", type=float, default=1.0)
    st.add_argument("--style-weight", type=float, default=1e6)
    st.add_argument("--content-layer", default=None, help="default: the backbone's (vgg19: features.22)")
    st.add_argument("--style-layers", default=None, help="comma-separated (default: the backbone's)")
    st.add_argument("--init", choices=["content", "noise"], default="content")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--max-pixels", type=int, default=1024 * 1024, help="refuse larger content images")
    _model_arguments(st, default="vgg19")
    st.set_defaults(func=style_command)

    g = sub.add_parser("serve-grpc", help="serve the cnnpipe.v1.Inference gRPC API from the exported models")
    g.add_argument("--models", default=os.environ.get("CNNPIPE_MODELS_DIR", str(paths.MODELS)), help="folder of *.onnx")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for all interfaces)")
    g.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    g.add_argument("--workers", type=int, default=8, help="concurrent RPCs")
    g.add_argument("--threads", type=int, default=0, help="ONNX Runtime / torch threads (0 = all cores)")
    g.add_argument("--max-message-mb", type=int, default=32, help="largest request accepted")
    g.add_argument(
        "--backend",
        default=os.environ.get("CNNPIPE_BACKEND", "auto"),
        help="what runs the models: auto (ONNX Runtime on CUDA, else torch on CUDA, else ONNX Runtime on the CPU)"
        " | onnxruntime | torch (the .pt checkpoints)",
    )
    g.add_argument(
        "--device", default=os.environ.get("CNNPIPE_DEVICE", "auto"), help="where they run: auto | cpu | cuda"
    )
    g.add_argument(
        "--dream-backbone",
        choices=["classifier", *TORCHVISION_BACKBONES],
        default=os.environ.get("CNNPIPE_DREAM_BACKBONE", "classifier"),
        help="features for DeepDream and style transfer (torchvision nets need cached ImageNet weights)",
    )
    g.add_argument(
        "--dream-slots", type=int, default=1, help="DeepDream and style-transfer streams at once (more: UNAVAILABLE)"
    )
    g.add_argument("--grace", type=float, default=5.0, help="seconds in-flight calls get on SIGTERM")
    g.add_argument("--tls-cert", help="server certificate chain (PEM); with --tls-key, serve TLS")
    g.add_argument("--tls-key", help="server private key (PEM)")
    g.add_argument("--tls-client-ca", help="require client certificates signed by this CA (PEM)")
    g.set_defaults(func=serve_grpc_command)

    c = sub.add_parser(
        "compare",
        help="metrics and params of commits, experiments and a running server, side by side",
        description="A row per commit or DVC experiment: the params that differ, the headline metrics "
        "(classifier accuracy, SR PSNR/SSIM and gain over bicubic, ONNX parity) and their change "
        "against a baseline row. Default: the last 10 commits of HEAD that have metrics.",
    )
    c.add_argument("revs", nargs="*", metavar="REV", help="commits, branches, tags or experiment names")
    c.add_argument("--all-commits", action="store_true", help="every commit of HEAD's history")
    c.add_argument("-n", dest="num", type=int, default=None, help="the last N commits (default 10)")
    c.add_argument("--exp", action="store_true", help="the DVC experiments of each commit too")
    c.add_argument("--baseline", help="the row changes are measured against (default: the first, oldest)")
    c.add_argument("--per-class", action="store_true", help="classifier accuracy per class")
    c.add_argument("--server", metavar="URL", help="add the models a running server holds (its /metadata)")
    c.add_argument(
        "--params",
        action="append",
        metavar="GLOB",
        help="param columns matching GLOB (fnmatch, e.g. 'classifier.*'; repeatable); default: those that differ",
    )
    c.add_argument("--format", choices=FORMATS, default="table")
    c.add_argument("--wide", action="store_true", help="terminal table: every value in full (default: 120 columns)")
    c.add_argument("--transpose", action="store_true", help="table/md: a column per run (for more metrics than runs)")
    c.add_argument("--out", help="write to this file instead of stdout")
    c.add_argument("--repo", default=".", help="the DVC repository (default: here)")
    c.set_defaults(func=compare_command)
    return parser


def _model_arguments(parser: argparse.ArgumentParser, default: str = "classifier") -> None:
    """Which net the look-inside commands load."""
    parser.add_argument("--backbone", default=default, choices=["classifier", *TORCHVISION_BACKBONES])
    parser.add_argument("--weights", choices=["imagenet", "random"], default="imagenet", help="torchvision backbones")
    parser.add_argument("--no-download", action="store_true", help="use only cached ImageNet weights")
    parser.add_argument("--classifier", default=str(paths.CLASSIFIER_CHECKPOINT), help="the project's checkpoint")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
