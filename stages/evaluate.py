"""Stage evaluate: classifier accuracy + confusion matrix; SR PSNR/SSIM of model vs bicubic."""

from __future__ import annotations

from pathlib import Path

from cnnpipe import cifar10
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.evaluate import classifier_report, sr_comparison, sr_scores, write_json
from cnnpipe.images import bsds_split_dir, load_folder
from cnnpipe.nets import load_classifier, load_sr
from cnnpipe.params import load_params
from cnnpipe.sample_data import is_generated

CIFAR, BSDS = Path("data/cifar10"), Path("data/bsds300")
METRICS, PLOTS = Path("metrics"), Path("plots")


@exit_on_user_error
def main() -> None:
    params = load_params()
    device = pick_device(params.device)

    model, config = load_classifier(Path("models/classifier.pt"))
    report, table = classifier_report(
        model.to(device), cifar10.load(CIFAR, "test"), config["classes"], device, tta=params.classifier.tta
    )
    report["generated_sample_data"] = is_generated(CIFAR)
    write_json(METRICS / "classifier.json", report)
    PLOTS.mkdir(exist_ok=True)
    table.to_csv(PLOTS / "confusion.csv", index=False)
    print(f"classifier test accuracy {report['accuracy']:.4f}")

    scale = params.sr.scale
    sr_model, _ = load_sr(Path(f"models/sr_x{scale}.pt"))
    sets = {"bsds300_test": bsds_split_dir(BSDS, "test"), **params.evaluate.sr_extra_sets}
    sr_report: dict = {"scale": scale, "generated_sample_data": is_generated(BSDS)}
    test_images = []
    for name, folder in sets.items():
        images = load_folder(Path(folder))
        test_images = test_images or images
        sr_report[name] = sr_scores(sr_model, images, scale, desc=f"sr x{scale} {name}")
        s = sr_report[name]
        print(f"{name} x{scale}: PSNR model {s['psnr_model']:.2f} dB, bicubic {s['psnr_bicubic']:.2f} dB")
    write_json(METRICS / "sr.json", sr_report)
    grid = sr_comparison(
        sr_model, test_images[: params.evaluate.sr_examples], scale, params.evaluate.sr_crop,
        title=f"x{scale} on BSDS300 test" + (" (GENERATED SAMPLE DATA)" if sr_report["generated_sample_data"] else ""),
    )  # fmt: skip
    grid.save(PLOTS / "sr_comparison.png")


if __name__ == "__main__":
    main()
