"""DeepDream speed: our engine vs the seed tutorial's loop, same backbone, weights and image.

    python benchmarks/dream.py                  # 512×512, VGG19 up to layer 26, 4 octaves ×2, 25 steps
    python benchmarks/dream.py --weights imagenet   # real weights (needs them cached or online)

Beside each time it prints the job's FLOPs (``torch.utils.flop_counter``: forward + input gradient
for ours; the seed's loop also pays every weight gradient), the achieved rate, and a ``torch.mm``
rate measured in the same run for each precision, so the table shows the distance to the machine's
limit, not only the speed-up.

The peer reproduces the seed's loop structure: the image lives in numpy and goes to torch and
back every step, octaves are resized with scipy.ndimage.zoom, and the model's weights keep
requires_grad=True so every backward pass also computes weight gradients nobody uses. Its
objective (the L2 norm of the layer) and step rule (lr / mean|grad|, clip to the valid range)
are the seed's; the engine's mean-square objective gives the same normalised step.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torchvision

from cnnpipe.data.sample import scene
from cnnpipe.device import describe_hardware, pick_device
from cnnpipe.dream.backbones import IMAGENET_MEAN, IMAGENET_STD, torchvision_backbone
from cnnpipe.dream.engine import DreamParams, dream, pyramid_sizes
from cnnpipe.dream.presets import PRESETS
from cnnpipe.errors import exit_on_user_error
from cnnpipe.flops import fitting_size, full_backward_flops, input_gradient_flops, matmul_rate

LAYER = "features.26"  # VGG19's relu4_4, the layer the seed dreams on


def seed_loop(
    model: torch.nn.Module,
    image: np.ndarray,
    octaves: int,
    scale: float,
    steps: int,
    lr: float,
    device: torch.device | None = None,
) -> np.ndarray:
    """The seed's DeepDream loop (numpy image, scipy zoom, weight gradients on); on a GPU the
    image goes to ``device`` and back every step, as the seed's ``.cuda()`` version does."""
    from scipy.ndimage import zoom

    mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
    lower, upper = -mean / std, (1 - mean) / std
    base = (image.transpose(2, 0, 1).astype(np.float32) / 255 - mean) / std
    pyramid = [base]
    for _ in range(octaves - 1):
        pyramid.append(zoom(pyramid[-1], (1, 1 / scale, 1 / scale), order=1))
    detail = np.zeros_like(pyramid[-1])
    for octave_base in reversed(pyramid):
        if detail.shape != octave_base.shape:
            h, w = octave_base.shape[1:]
            detail = zoom(detail, (1, h / detail.shape[1], w / detail.shape[2]), order=1)
        img = octave_base + detail
        for _ in range(steps):
            x = torch.from_numpy(img).unsqueeze(0).to(device or "cpu").requires_grad_(True)
            model.zero_grad()
            loss = model(x).norm()
            loss.backward()
            grad = x.grad.cpu().numpy()[0]
            img = np.clip(img + lr / np.abs(grad).mean() * grad, lower, upper)
        detail = img - octave_base
    return ((img * std + mean).clip(0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    classic = PRESETS["classic"]  # the seeds' job: 4 octaves ×2, 25 steps, no jitter
    parser.add_argument("--octaves", type=int, default=classic.octaves)
    parser.add_argument("--octave-scale", type=float, default=classic.octave_scale)
    parser.add_argument("--steps", type=int, default=classic.steps)
    parser.add_argument("--lr", type=float, default=classic.lr)
    parser.add_argument("--weights", choices=["random", "imagenet"], default="random")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA where present")
    parser.add_argument("--skip-peer", action="store_true", help="time only our engine (e.g. on a GPU)")
    args = parser.parse_args()

    device = pick_device(args.device)  # first: no GPU is one line before any work
    print(describe_hardware())
    print(
        f"job: {args.size}×{args.size}, vgg19 {LAYER}, {args.octaves} octaves ×{args.octave_scale}, "
        f"{args.steps} steps/octave, weights {args.weights}, device {device}"
    )
    image = np.asarray(scene((args.size, args.size), np.random.default_rng(0)))
    torch.manual_seed(0)
    backbone = torchvision_backbone("vgg19", device, weights=args.weights)
    sizes = pyramid_sizes(args.size, args.size, args.octaves, args.octave_scale)
    ours_flops = args.steps * sum(
        input_gradient_flops(lambda x: backbone.activations(x, [LAYER])[LAYER], (1, 3, h, w), device) for h, w in sizes
    )
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    size = {name: fitting_size(dtype, device) for name, dtype in dtypes.items()}  # bf16 shrinks where emulated
    peak = {name: matmul_rate(dtype, device, n=size[name], fit=False) for name, dtype in dtypes.items()}
    rates = ", ".join(f"{name} {peak[name] / 1e9:.0f} GFLOP/s" for name in dtypes)
    smaller = [f"{name} at {size[name]}²" for name in dtypes if size[name] != 4096]
    note = f" ({', '.join(smaller)}: a 4096² call would take minutes here)" if smaller else ""
    print(f"same-run torch.mm 4096²: {rates}{note}")
    rows: list[tuple[str, float, float, str]] = []  # label, seconds, FLOPs, precision

    if not args.skip_peer:
        peer = torchvision.models.vgg19()
        peer.load_state_dict({k: v.cpu() for k, v in backbone.model.state_dict().items()})
        peer_features = peer.features[:27].eval()  # weights keep requires_grad=True, as in the seed
        peer_net = torch.nn.Sequential(peer_features)
        peer_flops = args.steps * sum(full_backward_flops(peer_net, (1, 3, h, w)) for h, w in sizes)
        started = time.perf_counter()
        seed_loop(peer_net, image, args.octaves, args.octave_scale, args.steps, args.lr)
        rows.append(("seed loop (numpy + scipy, weight grads)", time.perf_counter() - started, peer_flops, "fp32"))

    for label, bf16 in (("cnnpipe.dream fp32", False), ("cnnpipe.dream bf16 autocast", True)):
        params = dataclasses.replace(
            classic,
            layers={LAYER: 1.0},
            octaves=args.octaves,
            octave_scale=args.octave_scale,
            steps=args.steps,
            lr=args.lr,
            bf16=bf16,
            tile_size=max(512, args.size),
        )
        dream(image[:64, :64], backbone, DreamParams(layers={LAYER: 1.0}, octaves=1, steps=1, bf16=bf16))
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        dream(image, backbone, params)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows.append((label, time.perf_counter() - started, ours_flops, "bf16" if bf16 else "fp32"))

    reference = rows[0][1]
    print(f"\n{'method':<42} {'seconds':>9} {'speed-up':>9} {'GFLOP':>9} {'GFLOP/s':>8} {'of mm':>13}")
    for label, seconds, flops, precision in rows:
        rate = flops / seconds
        print(
            f"{label:<42} {seconds:>9.2f} {reference / seconds:>8.2f}× {flops / 1e9:>9.1f} {rate / 1e9:>8.0f} "
            f"{rate / peak[precision]:>7.0%} {precision}"
        )
    print("(FLOPs: matmuls and convolutions only, FlopCounterMode; 'of mm': achieved / same-run torch.mm)")


if __name__ == "__main__":
    main()
