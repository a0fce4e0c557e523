"""Stage evaluate: classifier test accuracy (plain and flip-TTA) and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

from cnnpipe import cifar10
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.evaluate import classifier_report, write_json
from cnnpipe.nets import load_classifier
from cnnpipe.params import load_params
from cnnpipe.sample_data import is_generated

CIFAR = Path("data/cifar10")
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


if __name__ == "__main__":
    main()
