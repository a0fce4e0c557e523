"""Stage train_classifier: CIFAR-10 classifier → models/classifier.pt, DVCLive log per epoch.

    python -m stages.train_classifier                            # one process (GPU if present)
    torchrun --nproc_per_node=N -m stages.train_classifier        # data-parallel, N processes

Resumes from checkpoints/classifier_last.pt when it was written with the same params.
"""

from __future__ import annotations

import contextlib

from dvclive import Live
from torch.distributed.elastic.multiprocessing.errors import record

from cnnpipe import paths
from cnnpipe.data import cifar10
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.models.checkpoint import save_checkpoint
from cnnpipe.params import load_params
from cnnpipe.train import distributed
from cnnpipe.train.classifier import train
from cnnpipe.train.tracking import epoch_logger


@record  # under torchrun, its failure report carries this rank's error (a lost peer, say)
@exit_on_user_error
def main() -> None:
    params = load_params()
    world = distributed.world_from_env()
    device = distributed.init(world, pick_device(params.device))
    root = cifar10.find_root(paths.CIFAR10)
    train_split, test_split = cifar10.load(paths.CIFAR10, "train"), cifar10.load(paths.CIFAR10, "test")
    if world.is_main:
        print(f"training {params.classifier.arch} on {len(train_split)} images, {world.size} process(es), {device}")
    live = Live(str(paths.CLASSIFIER_LIVE), dvcyaml=None, save_dvc_exp=False, report=None) if world.is_main else None
    with live or contextlib.nullcontext():
        result = train(
            params.classifier,
            train_split,
            test_split,
            device,
            classes=cifar10.read_class_names(root),
            on_epoch=epoch_logger(live) if live else None,
            checkpoint=paths.CLASSIFIER_RESUME,
            world=world,
        )
    if world.is_main:
        save_checkpoint(paths.CLASSIFIER_CHECKPOINT, result.model, result.config)
        print(f"wrote {paths.CLASSIFIER_CHECKPOINT}")
    distributed.shutdown(world)


if __name__ == "__main__":
    main()
