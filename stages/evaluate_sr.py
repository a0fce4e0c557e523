"""Stage evaluate_sr@<scale>: PSNR/SSIM of model vs bicubic on BSDS300 test (+ extra sets), and
of the model's ×8 self-ensemble (``evaluate.sr_self_ensemble``), and the LR | bicubic | model | HR
comparison grid.

python -m stages.evaluate_sr SCALE
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnpipe import paths
from cnnpipe.atomic import atomic_write, write_json
from cnnpipe.data.images import bsds_split_dir, load_folder
from cnnpipe.data.sample import is_generated
from cnnpipe.errors import exit_on_user_error
from cnnpipe.evaluate.sr import sr_comparison, sr_scores
from cnnpipe.models.checkpoint import load_sr
from cnnpipe.params import load_params, scale_argument


@exit_on_user_error
def main(argv: list[str]) -> None:
    params = load_params()
    scale = scale_argument(argv, params, "evaluate_sr")
    model, _ = load_sr(paths.sr_checkpoint(scale))
    sets = {"bsds300_test": bsds_split_dir(paths.BSDS300, "test"), **params.evaluate.sr_extra_sets}
    report: dict = {"scale": scale, "generated_sample_data": is_generated(paths.BSDS300)}
    test_images = []
    for name, folder in sets.items():
        images = load_folder(Path(folder))
        test_images = test_images or images
        s = sr_scores(model, images, scale, desc=f"sr x{scale} {name}", ensemble=params.evaluate.sr_self_ensemble)
        report[name] = s
        line = f"{name} x{scale}: PSNR model {s['psnr_model']:.2f} dB, bicubic {s['psnr_bicubic']:.2f} dB"
        print(line + (f", model ×8 self-ensemble {s['psnr_model_x8']:.2f} dB" if "psnr_model_x8" in s else ""))
    write_json(paths.sr_metrics(scale), report)
    title = f"x{scale} on BSDS300 test" + (" (GENERATED SAMPLE DATA)" if report["generated_sample_data"] else "")
    grid = sr_comparison(model, test_images[: params.evaluate.sr_examples], scale, params.evaluate.sr_crop, title)
    with atomic_write(paths.sr_comparison(scale)) as tmp:
        grid.save(tmp, format="PNG")


if __name__ == "__main__":
    main(sys.argv[1:])
