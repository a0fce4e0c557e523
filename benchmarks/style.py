"""Neural style transfer timing and loss curves: 256×256, 200 steps, VGG19 (Gatys et al. 2016 layers).

    python benchmarks/style.py [--weights random|imagenet] [--side 256] [--steps 200] [--device auto]

ImageNet weights cannot be downloaded on the machines here, so the default is VGG19-shaped random
weights: the compute is the same, the picture is not. Prints the hardware, seconds per run and per
step, and the content and style losses every 20 steps with a check that they fall in expectation
(each block of 20 steps' mean below the previous block's).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnpipe.device import describe_hardware, pick_device  # noqa: E402
from cnnpipe.dream.backbones import load_backbone  # noqa: E402
from cnnpipe.errors import exit_on_user_error  # noqa: E402
from cnnpipe.explain.style import StyleParams, transfer  # noqa: E402


def photo(side: int, seed: int) -> torch.Tensor:
    """A smooth gradient with noise: content and style differ in layout and colour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = np.stack([xx, yy, np.sin(6 * (xx + seed * yy)) * 0.5 + 0.5], axis=0)
    image = np.clip(base + rng.normal(0, 0.08, base.shape), 0, 1)
    return torch.from_numpy(image).float()[None]


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", choices=["random", "imagenet"], default="random")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    device = pick_device(args.device)  # first: no GPU is one line before any work
    print(describe_hardware())
    torch.manual_seed(0)
    backbone = load_backbone("vgg19", device, weights=args.weights)
    content, style = photo(args.side, 1).to(device), photo(args.side, 2).to(device)
    print(f"VGG19 ({args.weights} weights) on {device}; {args.side}×{args.side}; {args.steps} steps of Adam")
    transfer(content, style, backbone, StyleParams(steps=2))  # warm-up: allocator, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = transfer(content, style, backbone, StyleParams(steps=args.steps))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(f"{seconds:.1f} s for {args.steps} steps ({seconds / args.steps * 1000:.0f} ms per step)")
    print(f"{'steps':>9s} {'content loss':>13s} {'style loss':>11s}")
    block = 20
    content_losses, style_losses = np.array(result.content_losses), np.array(result.style_losses)
    means = []
    for start in range(0, args.steps, block):
        c, s = content_losses[start : start + block].mean(), style_losses[start : start + block].mean()
        means.append(c + s)
        print(f"{start + 1:>4d}-{min(start + block, args.steps):<4d} {c:13.5g} {s:11.5g}")
    falling = all(later < earlier for earlier, later in itertools.pairwise(means))
    print(f"total loss falls block to block: {'yes' if falling else 'NO'}")
    print(f"style loss {style_losses[0]:.5g} → {style_losses[-1]:.5g} ({style_losses[-1] / style_losses[0]:.1%} left)")


if __name__ == "__main__":
    main()
