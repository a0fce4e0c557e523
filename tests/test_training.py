"""Short real trainings on the generated sample: they must learn, not just run."""

import dataclasses
import itertools

import pytest
import torch

from cnnpipe.data import cifar10
from cnnpipe.data.augment import crop, cutout, random_dihedral, translations
from cnnpipe.data.fetch import Source, fetch
from cnnpipe.data.images import bsds_split_dir, load_folder
from cnnpipe.evaluate.sr import sr_scores
from cnnpipe.models.checkpoint import CLASSIFIER_ARCHS, build_classifier, build_sr
from cnnpipe.models.classifier import AirbenchNet
from cnnpipe.models.predict import predict_logits
from cnnpipe.params import ClassifierParams, SRParams
from cnnpipe.train.classifier import (
    EpochDraws,
    Lookahead,
    _augment,
    _optimizers,
    low_res,
    model_config,
    muon_filters,
    triangle,
)
from cnnpipe.train.classifier import train as train_classifier
from cnnpipe.train.sr import model_config as sr_model_config
from cnnpipe.train.sr import sample_patches, warmup_cosine
from cnnpipe.train.sr import train as train_sr

CPU = torch.device("cpu")


def test_crop_takes_the_window_at_each_offset_of_the_padded_image() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = crop(x, 2, torch.tensor([[0, 4], [3, 1]]))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    assert torch.equal(out[0], padded[0, :, 0:8, 4:12]) and torch.equal(out[1], padded[1, :, 3:11, 1:9])
    assert torch.equal(crop(x, 2, torch.full((2, 2), 2)), x)  # offset = pad: no shift


def test_dihedral_only_permutes_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 6, 6)
    out = random_dihedral(x, g)
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


@pytest.mark.parametrize(
    "p",
    [
        ClassifierParams(widths=[8, 16, 16], epochs=4, batch_size=32, lr=0.4, bf16=False),
        ClassifierParams(
            arch="resnet9",
            width=8,
            epochs=4,
            batch_size=32,
            lr=0.2,
            momentum=0.9,
            weight_decay=5e-4,
            norm_lr_scale=1.0,
            bf16=False,
        ),
        ClassifierParams(
            widths=[8, 16, 16],
            epochs=4,
            batch_size=32,
            lr=0.4,
            optimizer="muon",
            lookahead=False,
            low_res=24,
            low_res_epochs=2,
            bf16=False,
        ),
    ],
    ids=["airbench", "resnet9", "airbench-muon-low-res"],
)
def test_classifier_learns_the_sample(tmp_path, tiny_archives, p: ClassifierParams) -> None:
    path, md5 = tiny_archives["cifar10"]
    fetch(Source(str(path), md5, "data.cifar10"), tmp_path)
    train, test = cifar10.load(tmp_path, "train"), cifar10.load(tmp_path, "test")
    result = train_classifier(p, train, test, CPU)
    assert len(result.history) == 4
    assert result.history[-1]["test_acc"] > 0.3  # chance is 0.1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_whitening_bias_trains_only_for_its_epochs(tmp_path, tiny_archives) -> None:
    path, md5 = tiny_archives["cifar10"]
    fetch(Source(str(path), md5, "data.cifar10"), tmp_path)
    train = cifar10.load(tmp_path, "train")
    p = ClassifierParams(widths=[8, 8, 8], epochs=2, batch_size=64, lr=0.1, bf16=False, tta=0)
    frozen = train_classifier(dataclasses.replace(p, whiten_bias_epochs=0), train, None, CPU).model
    learnt = train_classifier(dataclasses.replace(p, whiten_bias_epochs=1), train, None, CPU).model
    assert torch.equal(frozen.whiten.bias, torch.zeros(24))
    assert learnt.whiten.bias.abs().max() > 0


def test_triangle_schedule_rises_to_the_peak_then_falls_to_the_end_value() -> None:
    f = triangle(100, warmup=0.2, start=0.2, end=0.07)
    assert f(0) == pytest.approx(0.2) and f(10) == pytest.approx(0.6) and f(20) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.535) and f(100) == pytest.approx(0.07)
    assert all(f(i) >= f(i + 1) for i in range(20, 100))


def test_lookahead_pulls_the_net_onto_the_slow_weights() -> None:
    net = torch.nn.BatchNorm1d(2)
    slow = Lookahead(net)
    with torch.no_grad():
        net.bias.fill_(1.0)
        net.running_mean.fill_(1.0)
    slow.update(decay=0.75)  # slow moves a quarter of the way, and the net is set to it
    assert torch.allclose(net.bias, torch.full((2,), 0.25)) and torch.equal(slow.slow["bias"], net.bias)
    assert torch.allclose(net.running_mean, torch.full((2,), 0.25))  # BN statistics are averaged too
    with torch.no_grad():
        net.bias.fill_(5.0)
    slow.update(decay=1.0)  # decay 1: the net goes back to the slow weights unchanged
    assert torch.allclose(net.bias, torch.full((2,), 0.25))
    assert Lookahead.decay(0, 100) == 0 and Lookahead.decay(100, 100) == pytest.approx(0.95**5)


@pytest.mark.parametrize(("arch", "size"), [("airbench", ("widths", [8, 16, 16])), ("resnet9", ("width", 8))])
def test_model_config_names_the_param_that_sizes_the_arch(arch: str, size: tuple) -> None:
    p = ClassifierParams(arch=arch, widths=[8, 16, 16], width=8)
    config = model_config(p, ("a", "b", "c"))
    (other,) = {"widths", "width"} - {size[0]}
    assert config[size[0]] == size[1] and other not in config
    model = build_classifier(config)
    assert isinstance(model, CLASSIFIER_ARCHS[arch].net) and model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_alternating_flip_shows_each_image_mirrored_in_every_other_epoch() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    idx = torch.randperm(64)
    base = torch.rand(64) < 0.5
    p = ClassifierParams(translate=0, flip="alternating")
    odd, even, odd_again = (_augment(images[idx], idx, EpochDraws.draw(images, e, base, p, g), p) for e in (1, 2, 3))
    assert torch.equal(odd, odd_again)
    for k in range(64):
        assert torch.equal(even[k], odd[k].flip(-1))
        assert torch.equal(odd[k], images[idx[k]].flip(-1) if base[idx[k]] else images[idx[k]])
    none = ClassifierParams(translate=0, flip="none")
    assert torch.equal(_augment(images, torch.arange(64), EpochDraws.draw(images, 1, base, none, g), none), images)


def test_epoch_draws_cover_every_translation_and_random_flips_mirror_about_half() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(4000, 3, 32, 32, dtype=torch.uint8)
    p = ClassifierParams(translate=2, flip="random", cutout=8)
    draws = EpochDraws.draw(images, 1, torch.zeros(4000, dtype=torch.bool), p, g)
    assert set(draws.shifts.flatten().tolist()) == set(range(5))
    assert set(draws.corners.flatten().tolist()) == set(range(25))  # 32 - 8 + 1 places, every one
    assert 0.45 < draws.mirror.float().mean() < 0.55
    assert draws.fill.flatten().tolist() == [125, 123, 114]  # the CIFAR-10 mean colour
    again = EpochDraws.draw(images, 1, torch.zeros(4000, dtype=torch.bool), p, torch.Generator().manual_seed(0))
    assert torch.equal(again.shifts, draws.shifts) and torch.equal(again.corners, draws.corners)


def test_cutout_fills_the_square_at_each_corner_with_the_fill_colour() -> None:
    images = torch.full((3, 3, 10, 10), 255, dtype=torch.uint8)
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8).view(3, 1, 1)
    corners = torch.tensor([[0, 0], [6, 2], [3, 6]])
    out = cutout(images, 4, corners, fill)
    for k, (top, left) in enumerate(corners.tolist()):
        square = torch.zeros(10, 10, dtype=torch.bool)
        square[top : top + 4, left : left + 4] = True
        assert torch.equal(out[k][:, square], fill.view(3, 1).expand(3, 16))
        assert (out[k][:, ~square] == 255).all()


def test_cutout_param_masks_one_square_in_each_image() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (32, 3, 32, 32), dtype=torch.uint8)
    base = torch.zeros(32, dtype=torch.bool)
    p = ClassifierParams(translate=0, cutout=8)
    out = _augment(images, torch.arange(32), EpochDraws.draw(images, 1, base, p, g), p)
    changed = (out != images).any(1)
    assert all(0 < changed[k].sum() <= 64 for k in range(32))


def test_tta_translations_shift_by_one_pixel_with_reflection() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    up_left, down_right = translations(x, 1)
    assert torch.equal(up_left[..., 1:, 1:], x[..., :-1, :-1])
    assert torch.equal(down_right[..., :-1, :-1], x[..., 1:, 1:])


def test_flip_tta_leaves_a_mirror_symmetric_model_unchanged() -> None:
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10))
    images = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)
    plain = predict_logits(model, images, CPU)
    assert torch.allclose(predict_logits(model, images, CPU, tta=1), plain, atol=1e-6)
    assert predict_logits(model, images, CPU, tta=2).shape == plain.shape


def test_batch_norm_params_get_the_scaled_lr_and_frozen_weights_none() -> None:
    model = AirbenchNet(10, (8, 16, 16))
    (optimizer,) = _optimizers(model, ClassifierParams(lr=0.5, weight_decay=0.01, norm_lr_scale=64.0))
    base, norm = optimizer.param_groups
    bn_shifts = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(q) for q in norm["params"]} == bn_shifts
    assert norm["lr"] == 32.0 and norm["lr"] * norm["weight_decay"] == pytest.approx(base["lr"] * base["weight_decay"])
    assert any(q is model.whiten.bias for q in base["params"])
    assert not any(q is model.whiten.weight for g in optimizer.param_groups for q in g["params"])


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


def test_sr_finish_epochs_fit_mse_in_fp32(tmp_path, tiny_archives, monkeypatch) -> None:
    import cnnpipe.train.sr as sr_training

    path, md5 = tiny_archives["bsds300"]
    fetch(Source(str(path), md5, "data.bsds300"), tmp_path)
    images = load_folder(bsds_split_dir(tmp_path, "train"))
    autocast_calls: list[bool] = []
    real_autocast = sr_training.autocast
    monkeypatch.setattr(sr_training, "autocast", lambda d, on: autocast_calls.append(on) or real_autocast(d, on))
    p = SRParams(channels=8, blocks=1, patch_size=8, patches_per_epoch=64, batch_size=16, epochs=3, finish_fraction=0.3)
    assert p.finish_epochs == 1  # 0.3 of 3, rounded
    history = train_sr(dataclasses.replace(p, bf16=True), 2, images, CPU).history
    assert autocast_calls == [True] * 8 + [False] * 4  # 4 steps per epoch: two bf16 epochs, then fp32
    as_mse = [10 ** (-row["train_psnr"] / 10) for row in history]  # the epoch's mean MSE, as PSNR reports it
    assert history[0]["train_loss"] > 5 * as_mse[0]  # L1 is far above the MSE of small errors
    assert history[-1]["train_loss"] == pytest.approx(as_mse[-1], rel=0.05)  # the loss is the MSE


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


def test_muon_takes_the_conv_filters_and_sgd_the_rest_with_the_whitening_bias_among_the_shifts() -> None:
    model = AirbenchNet(10, (8, 16, 16))
    sgd, muon = _optimizers(model, ClassifierParams(optimizer="muon", lr=0.5, norm_lr_scale=64.0))
    filters = {id(w) for w in muon_filters(model)}
    assert filters == {id(q) for g in muon.param_groups for q in g["params"]}
    assert len(filters) == 6 and id(model.whiten.weight) not in filters  # 2 convs × 3 groups; whitening frozen
    base, shifts = sgd.param_groups
    assert {id(q) for q in base["params"]} == {id(model.head.weight)}
    assert any(q is model.whiten.bias for q in shifts["params"]) and shifts["lr"] == 32.0
    assert not filters & {id(q) for g in sgd.param_groups for q in g["params"]}


def test_a_muon_step_is_orthogonal_and_keeps_each_filter_bank_at_its_norm() -> None:
    from cnnpipe.train.muon import ConvMuon

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 8, 3, 3) * 5)
    w.grad = torch.randn_like(w)
    before = w.detach().clone()
    ConvMuon([w], lr=0.1, momentum=0.0).step()
    rescaled = before * (16**0.5 / before.norm())
    update = ((rescaled - w.detach()) / 0.1).reshape(16, -1)
    singular = torch.linalg.svdvals(update.float())
    assert singular.min() > 0.3 and singular.max() < 1.6  # Newton–Schulz: all directions near 1, none dropped
    assert update.norm() > 0 and not torch.allclose(update, w.grad.reshape(16, -1))  # not the raw gradient
    v = torch.nn.Parameter(torch.randn(16, 8, 3, 3) * 5)
    v.grad = torch.randn_like(v)
    ConvMuon([v], lr=1e-6, momentum=0.0).step()
    assert v.detach().norm().item() == pytest.approx(4.0, rel=1e-4)  # rescaled to √16 before the step


def test_low_res_epochs_train_on_smaller_images_and_the_net_takes_them() -> None:
    x = torch.rand(4, 3, 32, 32)
    small = low_res(x, 24)
    assert small.shape == (4, 3, 24, 24) and small.mean().item() == pytest.approx(x.mean().item(), abs=0.01)
    model = AirbenchNet(10, (8, 16, 16))
    assert model(small).shape == (4, 10)  # the global max-pool takes 24² as well as 32²
