"""Stage train_sr@<scale>: super-resolution on BSDS300 train → models/sr_x<scale>.pt.

python -m stages.train_sr SCALE   (dvc.yaml runs it once per ``sr.scales`` entry)
"""

from __future__ import annotations

import sys

from dvclive import Live

from cnnpipe import paths
from cnnpipe.data.images import bsds_split_dir, load_folder
from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.models.checkpoint import save_checkpoint
from cnnpipe.params import load_params, scale_argument
from cnnpipe.train.sr import train
from cnnpipe.train.tracking import epoch_logger


@exit_on_user_error
def main(argv: list[str]) -> None:
    params = load_params()
    scale = scale_argument(argv, params, "train_sr")
    device = pick_device(params.device)
    images = load_folder(bsds_split_dir(paths.BSDS300, "train"))
    print(f"training {params.sr.arch} x{scale} on {len(images)} images, device {device}")
    with Live(str(paths.sr_live(scale)), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        result = train(params.sr, scale, images, device, on_epoch=epoch_logger(live))
    save_checkpoint(paths.sr_checkpoint(scale), result.model, result.config)
    print(f"wrote {paths.sr_checkpoint(scale)}")


if __name__ == "__main__":
    main(sys.argv[1:])
