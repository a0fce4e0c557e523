from pathlib import Path

import pytest
import torch

from cnnpipe.data.color import resize_bicubic
from cnnpipe.models.checkpoint import build_classifier, load_classifier, load_sr, save_checkpoint
from cnnpipe.models.classifier import AirbenchNet, ConvGroup, ResNet9
from cnnpipe.models.sr import ESPCN, ResSR


@pytest.mark.parametrize("width", [4, 16])
def test_classifier_maps_a_batch_of_images_to_ten_logits(width: int) -> None:
    assert ResNet9(num_classes=10, width=width)(torch.rand(5, 3, 32, 32)).shape == (5, 10)


def test_airbench_net_maps_images_to_logits_and_airbench94_has_its_size() -> None:
    assert AirbenchNet(10, (8, 16, 16))(torch.rand(5, 3, 32, 32)).shape == (5, 10)
    params = sum(p.numel() for p in AirbenchNet().parameters())
    assert 1_950_000 < params < 2_000_000  # airbench94: ~1.97 M


def test_conv_group_starts_as_identity_then_pool() -> None:
    group = ConvGroup(6, 6).eval()
    x = torch.rand(2, 6, 8, 8)
    with torch.no_grad():
        assert torch.equal(group[0](x), x)  # dirac: the first conv passes its input through
        assert torch.equal(group[4](x), x)
    assert not group[2].weight.requires_grad and group[2].bias.requires_grad  # BN: scale fixed, shift learns


def test_whitening_makes_the_patch_covariance_the_identity() -> None:
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(400, 3, 34, 34, generator=g), 3, stride=1)  # correlated
    images = (smooth * 255).round().byte()
    net = AirbenchNet(10, (8, 16, 16))
    net.init_whitening(images, eps=1e-8)
    with torch.no_grad():
        out = net.whiten((images.float() / 255 - net.mean) / net.std) - net.whiten.bias[:, None, None]
    flat = out[:, :12].permute(1, 0, 2, 3).reshape(12, -1).double()
    covariance = flat @ flat.T / flat.shape[1]
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=1e-3)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])
    assert not net.whiten.weight.requires_grad


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_net_upscales_any_size_by_its_scale(scale: int) -> None:
    out = ESPCN(scale=scale, channels=8)(torch.rand(2, 1, 13, 21))
    assert out.shape == (2, 1, 13 * scale, 21 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ressr_upscales_any_size_and_stays_small(scale: int) -> None:
    net = ResSR(scale=scale, channels=48, blocks=8)
    assert net(torch.rand(2, 1, 13, 21)).shape == (2, 1, 13 * scale, 21 * scale)
    assert sum(p.numel() for p in net.parameters()) < 500_000


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_untrained_ressr_is_exactly_the_evaluation_bicubic_away_from_the_border(scale: int) -> None:
    net = ResSR(scale=scale, channels=8, blocks=2)
    x = torch.rand(1, 1, 20, 27)
    with torch.no_grad():
        out = net(x)
    expected = resize_bicubic(x, (20 * scale, 27 * scale))
    inner = (..., slice(2 * scale, -2 * scale), slice(2 * scale, -2 * scale))
    assert (out - expected)[inner].abs().max() < 1e-5
    assert (out - expected).abs().max() < 0.1  # edge pixels: replicate padding vs renormalised taps


def test_ressr_context_is_its_receptive_field_radius() -> None:
    net = ResSR(scale=2, channels=4, blocks=3).eval()
    for p in net.parameters():
        torch.nn.init.constant_(p, 0.05)
    x = torch.zeros(1, 1, 41, 41, requires_grad=True)
    net(x)[0, 0, 40, 40].backward()  # an output pixel of LR pixel (20, 20)
    rows, cols = x.grad[0, 0].nonzero(as_tuple=True)
    assert max(20 - rows.min(), rows.max() - 20, 20 - cols.min(), cols.max() - 20) == net.context


def test_sr_net_at_zero_weights_is_a_nearest_neighbour_upscale() -> None:
    net = ESPCN(scale=2, channels=8)
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 1, 5, 7)
    expected = x.repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert torch.equal(net(x), expected)


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    net = ResNet9(width=4).eval()
    config = {"arch": "resnet9", "width": 4, "classes": [str(i) for i in range(10)]}
    save_checkpoint(tmp_path / "c.pt", net, config)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(raw) == {"config", "state_dict"}
    loaded, loaded_config = load_classifier(tmp_path / "c.pt")
    x = torch.rand(3, 3, 32, 32)
    assert loaded_config == config
    assert torch.allclose(loaded(x), net(x))

    sr = ESPCN(scale=3, channels=8).eval()
    save_checkpoint(tmp_path / "s.pt", sr, {"arch": "espcn", "scale": 3, "channels": 8})
    loaded_sr, _ = load_sr(tmp_path / "s.pt")
    y = torch.rand(1, 1, 9, 9)
    assert torch.allclose(loaded_sr(y), sr(y))

    air = AirbenchNet(10, (8, 16, 16)).eval()
    air_config = {"arch": "airbench", "widths": [8, 16, 16], "classes": [str(i) for i in range(10)]}
    save_checkpoint(tmp_path / "a.pt", air, air_config)
    loaded_air, _ = load_classifier(tmp_path / "a.pt")
    assert isinstance(build_classifier(air_config), AirbenchNet) and torch.equal(loaded_air(x), air(x))

    res = ResSR(scale=2, channels=8, blocks=2).eval()
    save_checkpoint(tmp_path / "r.pt", res, {"arch": "ressr", "scale": 2, "channels": 8, "blocks": 2})
    loaded_res, _ = load_sr(tmp_path / "r.pt")
    assert loaded_res.context == res.context and torch.allclose(loaded_res(y), res(y))
