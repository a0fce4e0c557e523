"""Stage evaluate: classifier test accuracy (plain and test-time augmented) and the confusion matrix."""

from __future__ import annotations

from cnnpipe import paths
from cnnpipe.atomic import write_bytes, write_json
from cnnpipe.data import cifar10
from cnnpipe.data.sample import is_generated
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.evaluate.classifier import classifier_report
from cnnpipe.models.checkpoint import load_classifier
from cnnpipe.params import load_params


@exit_on_user_error
def main() -> None:
    params = load_params()
    device = pick_device(params.device)
    model, config = load_classifier(paths.CLASSIFIER_CHECKPOINT)
    report, table = classifier_report(
        model.to(device), cifar10.load(paths.CIFAR10, "test"), config["classes"], device, tta=params.classifier.tta
    )
    report["generated_sample_data"] = is_generated(paths.CIFAR10)
    write_json(paths.CLASSIFIER_METRICS, report)
    write_bytes(paths.CONFUSION, table.to_csv(index=False).encode())
    print(f"classifier test accuracy {report['accuracy']:.4f}")


if __name__ == "__main__":
    main()
