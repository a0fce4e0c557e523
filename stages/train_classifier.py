"""Stage train_classifier: CIFAR-10 classifier → models/classifier.pt, DVCLive log per epoch.

    python -m stages.train_classifier                            # one process (GPU if present)
    torchrun --nproc_per_node=N -m stages.train_classifier        # data-parallel, N processes

Resumes from checkpoints/classifier_last.pt when it was written with the same params.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from dvclive import Live

from cnnpipe import cifar10, distributed
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.nets import save_checkpoint
from cnnpipe.params import load_params
from cnnpipe.tracking import epoch_logger
from cnnpipe.train_classifier import train

DATA = Path("data/cifar10")
OUT = Path("models/classifier.pt")
CHECKPOINT = Path("checkpoints/classifier_last.pt")


@exit_on_user_error
def main() -> None:
    params = load_params()
    world = distributed.world_from_env()
    device = distributed.init(world, pick_device(params.device))
    root = cifar10.find_root(DATA)
    train_split, test_split = cifar10.load(DATA, "train"), cifar10.load(DATA, "test")
    if world.is_main:
        print(f"training {params.classifier.arch} on {len(train_split)} images, {world.size} process(es), {device}")
    live = Live("dvclive/classifier", dvcyaml=None, save_dvc_exp=False, report=None) if world.is_main else None
    with live or contextlib.nullcontext():
        result = train(
            params.classifier, train_split, test_split, device, classes=cifar10.read_class_names(root),
            on_epoch=epoch_logger(live) if live else None, checkpoint=CHECKPOINT, world=world,
        )  # fmt: skip
    if world.is_main:
        save_checkpoint(OUT, result.model, result.config)
        print(f"wrote {OUT}")
    distributed.shutdown(world)


if __name__ == "__main__":
    main()
