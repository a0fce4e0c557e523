"""Super-resolution: our trainer vs the PyTorch reference example's recipe vs bicubic, ×2/×3/×4.

    python benchmarks/sr.py --train DIR/BSDS300/images/train --test DIR/BSDS300/images/test \
        --set5 DIR/Set5 --set14 DIR/Set14 --budget 20

Same training images, same threads and the same evaluation protocol for every method (Y channel
BT.601, ``scale`` px shaved, LR by antialiased bicubic). For each scale:

* **ours**: ``cnnpipe.train.sr.train`` with ``params.yaml``'s ``sr`` section (or ``--set``). The
  number of epochs is fitted to ``--budget`` minutes from a timed calibration of one epoch, then
  training runs for real and its actual wall time is reported.
* **reference**: the pytorch/examples ``super_resolution`` recipe as its README runs it
  (``--batchSize 4 --nEpochs 30 --lr 0.001``): its 4-conv ESPCN-style net with orthogonal init,
  one centre crop of 256 − 256 mod s per training image, LR by torchvision's default ``Resize``
  (PIL bilinear) of PIL's YCbCr luma, MSE, Adam. At test time it upscales PIL luma and merges
  bicubic chroma, as its ``super_resolve.py`` does; the result is scored like every other method.
* **bicubic**: the baseline.

Then ONNX Runtime CPU inference speed (output megapixels/s) of our exported ×2 and ×3 nets, and
the peak memory of upscaling a 1920×1080 image ×2 through the tiled library ``upscale``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnpipe.data.images import load_folder
from cnnpipe.device import describe_hardware
from cnnpipe.evaluate.sr import sr_scores
from cnnpipe.export.onnx import SR_DYNAMIC_AXES, export
from cnnpipe.models.checkpoint import build_sr
from cnnpipe.models.onnx_runtime import ort_session
from cnnpipe.models.upscale import self_ensemble, upscale
from cnnpipe.params import SRParams, section_with_overrides
from cnnpipe.train.sr import model_config, train

# ----------------------------------------------------------------------------- the reference recipe


class ReferenceNet(nn.Module):
    """pytorch/examples super_resolution's model: 5×5/64, 3×3/64, 3×3/32, 3×3/s², PixelShuffle."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 32, 3, padding=1)
        self.conv4 = nn.Conv2d(32, scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        gain = nn.init.calculate_gain("relu")
        for conv in (self.conv1, self.conv2, self.conv3):
            nn.init.orthogonal_(conv.weight, gain)
        nn.init.orthogonal_(self.conv4.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.shuffle(self.conv4(x))


def _pil_luma(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).convert("YCbCr").split()[0]


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def train_reference(images: list[np.ndarray], scale: int, epochs: int = 30, batch: int = 4) -> tuple[nn.Module, float]:
    """The example's training loop; returns the model and its training seconds."""
    torch.manual_seed(123)  # the example's default --seed
    crop = 256 - 256 % scale
    inputs, targets = [], []
    for image in images:
        y = _pil_luma(image)
        left, top = round((y.width - crop) / 2.0), round((y.height - crop) / 2.0)
        hr = y.crop((left, top, left + crop, top + crop))  # torchvision CenterCrop
        inputs.append(_to_tensor(hr.resize((crop // scale, crop // scale), Image.BILINEAR)))
        targets.append(_to_tensor(hr))
    x_all, y_all = torch.stack(inputs), torch.stack(targets)
    model = ReferenceNet(scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x_all))
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.mse_loss(model(x_all[idx]), y_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), time.perf_counter() - started


def reference_upscaler(model: nn.Module):
    """The example's super_resolve.py: model on PIL luma, PIL bicubic chroma, back to RGB."""

    @torch.no_grad()
    def run(lr_uint8: torch.Tensor) -> torch.Tensor:
        lr = Image.fromarray(lr_uint8[0].permute(1, 2, 0).numpy()).convert("YCbCr")
        y, cb, cr = lr.split()
        out = model(_to_tensor(y)[None])[0, 0].mul(255).clamp(0, 255).numpy()
        out_y = Image.fromarray(np.uint8(out.round()), mode="L")
        cb, cr = (c.resize(out_y.size, Image.BICUBIC) for c in (cb, cr))
        rgb = Image.merge("YCbCr", [out_y, cb, cr]).convert("RGB")
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].contiguous()

    return run


# ----------------------------------------------------------------------------- ours


def fitted_epochs(
    p: SRParams, scale: int, images: list[np.ndarray], budget_s: float, device: torch.device | None = None
) -> tuple[int, float]:
    """Epochs of ``p`` that fit ``budget_s``, from timed calibration epochs (same code path).

    The second of short epochs (sampling, degradation and steps; the first one pays oneDNN's
    one-off kernel setup: 15.0 s calibrated vs 13.3 s run at ×2 once) is scaled to a full epoch; the
    setup then counts against the budget in the real run's reported time. With a
    ``finish_fraction`` a third, fp32 probe epoch times the finishing epochs, and the fit takes
    that fraction of them at that cost. Returns (epochs, the main epochs' seconds).
    """
    finish = 1 if p.finish_fraction else 0
    patches = max(p.batch_size * 16, p.patches_per_epoch // 4)
    probe_fraction = finish / (2 + finish)  # the probe's last epoch finishes
    probe = dataclasses.replace(p, epochs=2 + finish, finish_fraction=probe_fraction, patches_per_epoch=patches)
    history = train(probe, scale, images, device or torch.device("cpu")).history

    def full_epoch_s(row: dict[str, float]) -> float:
        return row["epoch_seconds"] * p.patches_per_epoch / patches

    epoch_s, finish_s = full_epoch_s(history[1]), full_epoch_s(history[-1])
    mean_s = (1 - p.finish_fraction) * epoch_s + p.finish_fraction * finish_s
    return max(1, int(budget_s / mean_s)), epoch_s


@contextlib.contextmanager
def exported(model: nn.Module) -> Iterator[Path]:
    """``model`` as a temporary ONNX file, exported the way the pipeline's export_sr stage does."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sr.onnx"
        export(model, torch.rand(2, 1, 24, 24), path, SR_DYNAMIC_AXES, 18, {})
        yield path


def onnx_speed(
    model: nn.Module, scale: int, size: tuple[int, int], seconds: float = 5.0, ensemble: bool = False
) -> float:
    """Output megapixels/s of ``upscale`` on an RGB image of ``size`` (h, w) with ONNX Runtime, over
    at least 3 calls and ``seconds``; ``ensemble``: through the ×8 self-ensemble, as the servers
    run ``self_ensemble``."""
    with exported(model) as path:
        session = ort_session(path)
        single = lambda y: session.run(None, {"input": y})[0]  # noqa: E731
        luma = self_ensemble(single) if ensemble else single
        image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
        upscale(image, scale, luma, overlap=model.context)
        count, began = 0, time.perf_counter()
        while count < 3 or time.perf_counter() - began < seconds:
            upscale(image, scale, luma, overlap=model.context)
            count += 1
        elapsed = time.perf_counter() - began
    return count * size[0] * size[1] * scale * scale / elapsed / 1e6


# VmHWM (the peak RSS of this process image), not getrusage's ru_maxrss: Linux carries ru_maxrss
# over exec, so a child started by a big parent would report the parent's peak.
_MEMORY_PROBE = """
import sys, numpy as np
from cnnpipe.models.onnx_runtime import ort_session
from cnnpipe.models.upscale import upscale
def peak_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
session = ort_session(sys.argv[1])
image = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
before = peak_kb()
out = upscale(image, 2, lambda y: session.run(None, {"input": y})[0], overlap=int(sys.argv[2]))
after = peak_kb()
print(out.shape, before, after)
"""


def peak_memory_1080p_x2(model: nn.Module) -> tuple[float, float]:
    """(peak RSS MB of a fresh process upscaling 1920×1080 ×2, of which MB grew during it)."""
    with exported(model) as path:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(path), str(model.context)],
            capture_output=True,
            text=True,
            check=True,
        )
    _, before, after = out.stdout.rsplit(" ", 2)
    return int(after) / 1024, (int(after) - int(before)) / 1024


def precision_check(
    p: SRParams, scale: int, images: list[np.ndarray], sets: dict[str, list[np.ndarray]], budget_s: float
) -> dict[str, dict[str, float]]:
    """bf16 autocast against fp32 for the same steps: what bf16 costs in PSNR, and what it saves.

    The epochs are fitted to ``budget_s`` of bf16 training; fp32 then runs exactly those epochs
    (same seed, same patches), so the PSNR difference is the precision's alone.
    """
    p = dataclasses.replace(p, finish_fraction=0.0)  # the precisions alone, from start to end
    epochs, _ = fitted_epochs(dataclasses.replace(p, bf16=True), scale, images, budget_s)
    rows: dict[str, dict[str, float]] = {}
    for name, bf16 in (("bf16", True), ("fp32", False)):
        run = dataclasses.replace(p, bf16=bf16, epochs=epochs)
        started = time.perf_counter()
        model = train(run, scale, images, torch.device("cpu")).model
        rows[name] = {"train_s": time.perf_counter() - started, "epochs": epochs}
        for set_name, set_images in sets.items():
            rows[name][set_name] = sr_scores(model, set_images, scale, desc=f"x{scale} {set_name} {name}")["psnr_model"]
        print(f"x{scale} {name}: {rows[name]}", flush=True)
    return rows


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="folder of training images")
    parser.add_argument("--test", type=Path, help="BSDS300 test folder")
    parser.add_argument("--set5", type=Path)
    parser.add_argument("--set14", type=Path)
    parser.add_argument("--scales", type=int, nargs="*", default=[2, 3, 4], help="none: speed and memory only")
    parser.add_argument(
        "--budget", type=float, default=20.0, help="fit ours' epochs to this many minutes per scale; 0: params' epochs"
    )
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--self-ensemble", action="store_true", help="also score ours through the ×8 self-ensemble")
    parser.add_argument("--set", nargs="*", default=[], help="SR params, e.g. channels=48 blocks=8")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--precision-check", type=int, metavar="SCALE", help="also: bf16 vs fp32, same steps")
    parser.add_argument("--precision-budget", type=float, default=5.0, help="bf16 minutes of that check")
    args = parser.parse_args()

    p = section_with_overrides(SRParams, "sr", args.set)
    print(describe_hardware())
    train_images = load_folder(args.train) if args.scales or args.precision_check else []
    named = (("Set5", args.set5), ("Set14", args.set14), ("BSDS300-test", args.test))
    sets = {name: load_folder(folder) for name, folder in named if folder}
    listing = ", ".join(f"{k} ({len(v)})" for k, v in sets.items())
    print(f"train: {len(train_images)} images from {args.train}; eval sets: {listing}")
    if args.scales:
        budget = f"epochs fitted to {args.budget:g} min per scale" if args.budget else "epochs as given"
        print(f"ours: {p}; {budget}")

    results: dict = {"hardware": describe_hardware(), "params": dataclasses.asdict(p), "scales": {}}
    models = {}
    for scale in args.scales:
        if args.budget:
            epochs, epoch_s = fitted_epochs(p, scale, train_images, args.budget * 60)
            print(f"\nx{scale}: calibration {epoch_s:.1f} s/epoch → {epochs} epochs", flush=True)
        else:
            epochs = p.epochs
            print(f"\nx{scale}: {epochs} epochs", flush=True)
        run = dataclasses.replace(p, epochs=epochs)
        started = time.perf_counter()
        trained = train(run, scale, train_images, torch.device("cpu"))
        seconds = time.perf_counter() - started
        models[scale] = trained.model
        row: dict = {"ours_train_s": seconds, "ours_epochs": epochs}
        print(f"x{scale}: ours trained {seconds / 60:.1f} min", flush=True)
        if not args.skip_reference:
            ref, ref_s = train_reference(train_images, scale)
            row["reference_train_s"] = ref_s
            print(f"x{scale}: reference trained {ref_s / 60:.1f} min", flush=True)
        for name, images in sets.items():
            ours = sr_scores(trained.model, images, scale, desc=f"x{scale} {name}", ensemble=args.self_ensemble)
            row[name] = {
                "ours": ours["psnr_model"],
                "ours_ssim": ours["ssim_model"],
                "bicubic": ours["psnr_bicubic"],
                "bicubic_ssim": ours["ssim_bicubic"],
            }
            if args.self_ensemble:
                row[name] |= {"ours_x8": ours["psnr_model_x8"], "ours_x8_ssim": ours["ssim_model_x8"]}
            if not args.skip_reference:
                peer = sr_scores(reference_upscaler(ref), images, scale, desc=f"x{scale} {name} reference")
                row[name] |= {"reference": peer["psnr_model"], "reference_ssim": peer["ssim_model"]}
            print(f"x{scale} {name}: {row[name]}", flush=True)
        results["scales"][scale] = row

    print("\nPSNR dB (SSIM), Y channel, border shaved")
    plus = " ours, ×8 self-ensemble |" if args.self_ensemble else ""
    print(f"| scale | set | ours |{plus} reference recipe | bicubic |")
    print("|---|---|---|" + ("---|" if plus else "") + "---|---|")

    def cell(r: dict, key: str) -> str:
        return f"{r[key]:.2f} ({r[key + '_ssim']:.4f})" if key in r else "—"

    for scale, row in results["scales"].items():
        for name in sets:
            r = row[name]
            x8 = f" {cell(r, 'ours_x8')} |" if plus else ""
            print(f"| x{scale} | {name} | {cell(r, 'ours')} |{x8} {cell(r, 'reference')} | {cell(r, 'bicubic')} |")
    for scale, row in results["scales"].items():
        ref = f", reference {row['reference_train_s'] / 60:.1f} min" if "reference_train_s" in row else ""
        print(f"x{scale} training: ours {row['ours_train_s'] / 60:.1f} min ({row['ours_epochs']} epochs){ref}")

    if args.precision_check:
        scale = args.precision_check
        print(f"\nx{scale} precision check: the same epochs in bf16 autocast and in fp32", flush=True)
        rows = precision_check(p, scale, train_images, sets, args.precision_budget * 60)
        results["precision_check"] = {"scale": scale, **rows}
        print("| precision | training | " + " | ".join(sets) + " |")
        print("|---|---|" + "---|" * len(sets))
        for name, row in rows.items():
            psnrs = " | ".join(f"{row[s]:.2f}" for s in sets)
            print(f"| {name} | {row['train_s'] / 60:.1f} min ({row['epochs']:.0f} epochs) | {psnrs} |")
        gaps = ", ".join(f"{s} {rows['bf16'][s] - rows['fp32'][s]:+.2f} dB" for s in sets)
        slower = rows["fp32"]["train_s"] / rows["bf16"]["train_s"]
        print(f"x{scale} bf16 − fp32: {gaps}; fp32 took {slower:.2f}× as long")

    # Speed and memory depend on the architecture, not the weights: nets built from the same
    # params stand in for scales that were not trained in this invocation.
    def net(scale: int) -> nn.Module:
        return models[scale] if scale in models else build_sr(model_config(p, scale)).eval()

    for scale in (2, 3):
        mps = onnx_speed(net(scale), scale, (320, 480))
        results.setdefault("onnx_cpu_output_mpix_s", {})[scale] = mps
        print(f"ONNX Runtime CPU, x{scale}, 480×320 RGB input: {mps:.2f} output Mpx/s")
    if args.self_ensemble:
        mps = onnx_speed(net(2), 2, (320, 480), ensemble=True)
        results["onnx_cpu_output_mpix_s"]["2_self_ensemble"] = mps
        slower = results["onnx_cpu_output_mpix_s"][2] / mps
        print(
            f"ONNX Runtime CPU, x2 through the ×8 self-ensemble, 480×320 RGB input: {mps:.3f} output Mpx/s "
            f"({slower:.2f}× the time of one pass)"
        )
    peak, grown = peak_memory_1080p_x2(net(2))
    results["memory_1080p_x2_mb"] = {"peak_rss": peak, "grown_during_upscale": grown}
    print(f"1920×1080 ×2 through tiled upscale: peak RSS {peak:.0f} MB ({grown:.0f} MB grown during the call)")
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
