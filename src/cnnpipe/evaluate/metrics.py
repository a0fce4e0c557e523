"""Image-quality metrics by the SR protocol: PSNR and SSIM on the Y channel, border shaved."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Wang et al. 2004: 11×11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def shave(images: torch.Tensor, border: int) -> torch.Tensor:
    return images[..., border:-border, border:-border] if border > 0 else images


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape (inf if equal)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    coords = torch.arange(_SSIM_WINDOW, dtype=torch.float64, device=device) - _SSIM_WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, _SSIM_WINDOW, _SSIM_WINDOW)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM of two single-channel images (H×W or 1×1×H×W), valid-window convolution."""
    x = a.double().reshape(1, 1, *a.shape[-2:])
    y = b.double().reshape(1, 1, *b.shape[-2:])
    if min(x.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}×{_SSIM_WINDOW}")
    w = _gaussian_window(x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    var_x = F.conv2d(x * x, w) - mu_x**2
    var_y = F.conv2d(y * y, w) - mu_y**2
    cov = F.conv2d(x * y, w) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean().item()
