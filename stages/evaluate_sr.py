"""Stage evaluate_sr@<scale>: PSNR/SSIM of model vs bicubic on BSDS300 test (+ extra sets) and
the LR | bicubic | model | HR comparison grid.

python -m stages.evaluate_sr SCALE
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnpipe.errors import exit_on_user_error
from cnnpipe.evaluate import sr_comparison, sr_scores, write_json
from cnnpipe.images import bsds_split_dir, load_folder
from cnnpipe.nets import load_sr
from cnnpipe.params import load_params, scale_argument
from cnnpipe.sample_data import is_generated

BSDS = Path("data/bsds300")
METRICS, PLOTS = Path("metrics"), Path("plots")


@exit_on_user_error
def main(argv: list[str]) -> None:
    params = load_params()
    scale = scale_argument(argv, params, "evaluate_sr")
    model, _ = load_sr(Path(f"models/sr_x{scale}.pt"))
    sets = {"bsds300_test": bsds_split_dir(BSDS, "test"), **params.evaluate.sr_extra_sets}
    report: dict = {"scale": scale, "generated_sample_data": is_generated(BSDS)}
    test_images = []
    for name, folder in sets.items():
        images = load_folder(Path(folder))
        test_images = test_images or images
        report[name] = sr_scores(model, images, scale, desc=f"sr x{scale} {name}")
        s = report[name]
        print(f"{name} x{scale}: PSNR model {s['psnr_model']:.2f} dB, bicubic {s['psnr_bicubic']:.2f} dB")
    write_json(METRICS / f"sr_x{scale}.json", report)
    title = f"x{scale} on BSDS300 test" + (" (GENERATED SAMPLE DATA)" if report["generated_sample_data"] else "")
    grid = sr_comparison(model, test_images[: params.evaluate.sr_examples], scale, params.evaluate.sr_crop, title)
    PLOTS.mkdir(exist_ok=True)
    grid.save(PLOTS / f"sr_x{scale}_comparison.png")


if __name__ == "__main__":
    main(sys.argv[1:])
