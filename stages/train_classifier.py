"""Stage train_classifier: CIFAR-10 classifier → models/classifier.pt, DVCLive log per epoch."""

from __future__ import annotations

from pathlib import Path

from dvclive import Live

from cnnpipe import cifar10
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.nets import save_checkpoint
from cnnpipe.params import load_params
from cnnpipe.tracking import epoch_logger
from cnnpipe.train_classifier import train

DATA = Path("data/cifar10")
OUT = Path("models/classifier.pt")


@exit_on_user_error
def main() -> None:
    params = load_params()
    device = pick_device(params.device)
    root = cifar10.find_root(DATA)
    train_split, test_split = cifar10.load(DATA, "train"), cifar10.load(DATA, "test")
    print(f"training {params.classifier.arch} on {len(train_split)} images, device {device}")
    with Live("dvclive/classifier", dvcyaml=None, save_dvc_exp=False, report=None) as live:
        result = train(
            params.classifier, train_split, test_split, device,
            classes=cifar10.read_class_names(root), on_epoch=epoch_logger(live),
        )  # fmt: skip
    save_checkpoint(OUT, result.model, result.config)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
