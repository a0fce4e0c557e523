"""Stage train_sr@<scale>: super-resolution on BSDS300 train → models/sr_x<scale>.pt.

python -m stages.train_sr SCALE   (dvc.yaml runs it once per ``sr.scales`` entry)
"""

from __future__ import annotations

import sys
from pathlib import Path

from dvclive import Live

from cnnpipe.device import pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.images import bsds_split_dir, load_folder
from cnnpipe.nets import save_checkpoint
from cnnpipe.params import load_params, scale_argument
from cnnpipe.tracking import epoch_logger
from cnnpipe.train_sr import train

DATA = Path("data/bsds300")


@exit_on_user_error
def main(argv: list[str]) -> None:
    params = load_params()
    scale = scale_argument(argv, params, "train_sr")
    device = pick_device(params.device)
    images = load_folder(bsds_split_dir(DATA, "train"))
    out = Path(f"models/sr_x{scale}.pt")
    print(f"training {params.sr.arch} x{scale} on {len(images)} images, device {device}")
    with Live(f"dvclive/sr_x{scale}", dvcyaml=None, save_dvc_exp=False, report=None) as live:
        result = train(params.sr, scale, images, device, on_epoch=epoch_logger(live))
    save_checkpoint(out, result.model, result.config)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
