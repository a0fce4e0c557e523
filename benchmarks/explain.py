"""Are the explanations faithful? Deletion and insertion (Petsiuk et al. 2018, RISE, arXiv:1806.07421)
and the cascading-randomisation sanity check (Adebayo et al. 2018, arXiv:1810.03292) for the
trained classifier on CIFAR-10 test images.

    python benchmarks/explain.py --checkpoint models/classifier.pt --cifar10 data/cifar10 --images 1000

Deletion: pixels are set to black in the order a saliency map ranks them (most salient first),
``--steps`` equal chunks; the predicted class's probability after each chunk, averaged over the
curve, is the deletion AUC (lower = the map found what the prediction rests on). Insertion: the
same pixels copied, in the same order, into a blurred copy of the image (higher = better). Maps:
Grad-CAM, guided Grad-CAM (|gradient| summed over colour), occlusion (Captum, 4×4 patches, stride 2)
and a random order (the floor each must beat). Sanity check: the classifier's layers are
re-initialised from the top down (head, then each conv group); the Spearman rank correlation of
each image's Grad-CAM before and after should fall (target: mean ≤ 0.3 once the top is random).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnpipe.data import cifar10  # noqa: E402
from cnnpipe.data.color import to_float  # noqa: E402
from cnnpipe.device import describe_hardware  # noqa: E402
from cnnpipe.dream.engine import gaussian_blur  # noqa: E402
from cnnpipe.explain.attribution import default_layer, gradcam, rectified_gradient  # noqa: E402
from cnnpipe.models.checkpoint import load_classifier  # noqa: E402


@torch.no_grad()
def curves(
    model: torch.nn.Module, image: torch.Tensor, order: torch.Tensor, target: int, steps: int, fill: str = "black"
) -> tuple[float, float]:
    """(deletion AUC, insertion AUC) for one 3×H×W image and a pixel order (most salient first);
    deleted pixels become black (RISE) or the blurred image's (``fill="blur"``)."""
    h, w = image.shape[-2:]
    n = h * w
    masks = torch.zeros(steps + 1, n)
    for k in range(1, steps + 1):
        masks[k, order[: round(n * k / steps)]] = 1
    masks = masks.view(steps + 1, 1, h, w)
    soft = gaussian_blur(image[None], 3.0)
    deleted = image * (1 - masks) + (soft * masks if fill == "blur" else 0)
    inserted = soft * (1 - masks) + image * masks
    probs = model(torch.cat([deleted, inserted])).softmax(1)[:, target]
    auc = lambda p: float(((p[1:] + p[:-1]) / 2).mean())  # noqa: E731  # trapezoid on [0, 1]
    return auc(probs[: steps + 1]), auc(probs[steps + 1 :])


def occlusion_map(model: torch.nn.Module, image: torch.Tensor, target: int) -> torch.Tensor:
    from captum.attr import Occlusion

    attr = Occlusion(model).attribute(
        image[None], target=target, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), perturbations_per_eval=256
    )
    return attr[0].sum(0)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks = pd.DataFrame({"a": a.flatten().numpy(), "b": b.flatten().numpy()}).rank(method="average")
    value = ranks["a"].corr(ranks["b"])
    return 0.0 if np.isnan(value) else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models/classifier.pt")
    parser.add_argument("--cifar10", type=Path, default=ROOT / "data/cifar10")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last conv group)")
    parser.add_argument("--sanity-images", type=int, default=200)
    parser.add_argument("--fill", choices=["black", "blur"], default="black", help="what deleted pixels become")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(describe_hardware())
    model, config = load_classifier(args.checkpoint)
    model = model.float().eval()
    test = cifar10.load(args.cifar10, "test")
    images = to_float(torch.from_numpy(test.images[: args.images]))
    with torch.no_grad():
        predicted = model(images).argmax(1)
    accuracy = float((predicted.numpy() == test.labels[: args.images]).mean())
    layer = args.layer or default_layer(model, images[:1])
    print(
        f"classifier {args.checkpoint} ({config['arch']}), accuracy on these {len(images)} test images {accuracy:.4f}"
    )
    print(
        f"Grad-CAM layer {layer}; {args.steps} steps of {32 * 32 // args.steps} pixels; deletion fills with {args.fill}"
    )

    rows = []
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    for i, (image, target) in enumerate(zip(images, predicted.tolist(), strict=True)):
        x = image[None]
        cam = gradcam(model, x, target, layer)
        guided = rectified_gradient(model, x, target, "guided").abs().sum(0) * cam
        maps = {
            "Grad-CAM": cam,
            "guided Grad-CAM": guided,
            "occlusion": occlusion_map(model, image, target),
            "random": torch.rand(32, 32, generator=generator),
        }
        for method, saliency in maps.items():
            order = torch.argsort(saliency.flatten() + 1e-9 * torch.rand(1024, generator=generator), descending=True)
            deletion, insertion = curves(model, image, order, target, args.steps, args.fill)
            rows.append({"image": i, "method": method, "deletion": deletion, "insertion": insertion})
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} images, {time.perf_counter() - started:.0f} s", flush=True)
    table = pd.DataFrame(rows).groupby("method")[["deletion", "insertion"]].mean()
    table = table.loc[["Grad-CAM", "guided Grad-CAM", "occlusion", "random"]]
    random_deletion = table.loc["random", "deletion"]
    table["deletion vs random"] = table["deletion"] / random_deletion - 1
    print(f"\nDeletion / insertion AUC, mean over {len(images)} images (deletion: lower is better):")
    print(table.to_string(float_format=lambda v: f"{v:+.3f}" if abs(v) < 1 and v < 0 else f"{v:.4f}"))
    gc, floor = table.loc["Grad-CAM"], table.loc["random"]
    lower = "met" if gc["deletion vs random"] <= -0.30 else "NOT met"
    higher = "higher" if gc["insertion"] > floor["insertion"] else "NOT higher"
    change = gc["deletion vs random"]
    side = "below" if change < 0 else "ABOVE"
    print(f"Grad-CAM deletion AUC {abs(change):.1%} {side} random's (target: ≥ 30% below): {lower}")
    print(f"Grad-CAM insertion AUC {gc['insertion']:.4f} vs random {floor['insertion']:.4f}: {higher}")

    if args.sanity_images > 0:
        sanity_check(model, images[: args.sanity_images], predicted[: args.sanity_images].tolist(), layer)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


def sanity_check(model: torch.nn.Module, sample: torch.Tensor, targets: list[int], layer: str) -> None:
    """Cascading randomisation (Adebayo et al. 2018): re-initialise the head, then each conv group
    from the top, and print the mean Spearman ρ of each image's Grad-CAM before and after."""
    print(f"\nSanity check (cascading randomisation, {len(sample)} images, Grad-CAM at {layer}):")
    children = [name for name, m in model.features.named_children() if any(True for _ in m.parameters())]
    cascade = [("head", [n for n, _ in model.named_children() if n != "features"])] + [
        (f"+ features.{c}", [f"features.{c}"]) for c in reversed(children)
    ]
    randomised = copy.deepcopy(model)
    trained_maps = [gradcam(model, s[None], t, layer) for s, t in zip(sample, targets, strict=True)]
    for label, names in cascade:
        for name in names:
            for module in randomised.get_submodule(name).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        rho = [
            spearman(a, gradcam(randomised, s[None], t, layer))
            for a, s, t in zip(trained_maps, sample, targets, strict=True)
        ]
        print(f"  randomised {label:<14} mean Spearman ρ {np.mean(rho):+.3f}")


if __name__ == "__main__":
    main()
