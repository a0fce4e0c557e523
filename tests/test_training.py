"""Short real trainings on the generated sample: they must learn, not just run."""

import itertools

import torch

from cnnpipe import cifar10
from cnnpipe.augment import random_crop, random_dihedral, random_flip
from cnnpipe.evaluate import sr_scores
from cnnpipe.fetch import Source, fetch
from cnnpipe.images import bsds_split_dir, load_folder
from cnnpipe.nets import build_sr
from cnnpipe.params import ClassifierParams, SRParams
from cnnpipe.train_classifier import train as train_classifier
from cnnpipe.train_sr import model_config as sr_model_config
from cnnpipe.train_sr import sample_patches, warmup_cosine
from cnnpipe.train_sr import train as train_sr

CPU = torch.device("cpu")


def test_random_crop_takes_a_shifted_window_of_the_padded_image() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    assert out.shape == x.shape
    for n in range(2):
        windows = [padded[n, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], w) for w in windows)


def test_flip_and_dihedral_only_permute_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 6, 6)
    for out in (random_flip(x, g), random_dihedral(x, g)):
        assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_classifier_learns_the_sample(tmp_path, tiny_archives) -> None:
    path, md5 = tiny_archives["cifar10"]
    fetch(Source(str(path), md5, "data.cifar10"), tmp_path)
    train, test = cifar10.load(tmp_path, "train"), cifar10.load(tmp_path, "test")
    p = ClassifierParams(width=8, epochs=4, batch_size=32, lr=0.2, bf16=False)
    result = train_classifier(p, train, test, CPU)
    assert len(result.history) == 4
    assert result.history[-1]["test_acc"] > 0.3  # chance is 0.1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_patches_come_from_the_images() -> None:
    g = torch.Generator().manual_seed(0)
    planes = [torch.full((1, 20, 30), float(i)) for i in range(3)]
    patches = sample_patches(planes, 50, 9, g)
    assert patches.shape == (50, 1, 9, 9)
    assert all(p.unique().numel() == 1 for p in patches)


def test_sr_training_improves_on_its_starting_point(tmp_path, tiny_archives) -> None:
    path, md5 = tiny_archives["bsds300"]
    fetch(Source(str(path), md5, "data.bsds300"), tmp_path)
    images = load_folder(bsds_split_dir(tmp_path, "train"))
    p = SRParams(arch="espcn", channels=16, patch_size=16, patches_per_epoch=512, batch_size=32, epochs=6, lr=3e-3)
    torch.manual_seed(p.seed)
    untrained = build_sr(sr_model_config(p, 3)).eval()
    result = train_sr(p, 3, images, CPU)
    before = sr_scores(untrained, images, 3, "untrained")["psnr_model"]
    after = sr_scores(result.model, images, 3, "trained")["psnr_model"]
    assert after > before + 1.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_sr_schedule_warms_up_then_decays_to_zero() -> None:
    factor = warmup_cosine(1000)
    values = [factor(s) for s in range(1000)]
    assert values[0] == 1 / 50 and values[49] == 1.0  # 5% warm-up, linear
    assert all(a >= b for a, b in itertools.pairwise(values[49:]))
    assert values[-1] < 1e-4 and factor(5000) == 0.0


def test_ressr_training_beats_bicubic_on_its_training_images(tmp_path, tiny_archives) -> None:
    path, md5 = tiny_archives["bsds300"]
    fetch(Source(str(path), md5, "data.bsds300"), tmp_path)
    images = load_folder(bsds_split_dir(tmp_path, "train"))
    p = SRParams(channels=16, blocks=2, patch_size=16, patches_per_epoch=256, batch_size=16, epochs=3, lr=2e-3)
    result = train_sr(p, 2, images, CPU)
    scores = sr_scores(result.model, images, 2, "trained")
    assert scores["psnr_model"] > scores["psnr_bicubic"] + 0.1  # starts exactly at bicubic, then improves
