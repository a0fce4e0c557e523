from pathlib import Path

import pytest
import torch

from cnnpipe.nets import ESPCN, ResNet9, load_classifier, load_sr, save_checkpoint


@pytest.mark.parametrize("width", [4, 16])
def test_classifier_maps_a_batch_of_images_to_ten_logits(width: int) -> None:
    assert ResNet9(num_classes=10, width=width)(torch.rand(5, 3, 32, 32)).shape == (5, 10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_net_upscales_any_size_by_its_scale(scale: int) -> None:
    out = ESPCN(scale=scale, channels=8)(torch.rand(2, 1, 13, 21))
    assert out.shape == (2, 1, 13 * scale, 21 * scale)


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
