"""Input jitter for the classifier and the mapper's judges: shifts, flips and blur, drawn from an explicit generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jitter(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to 2 px per image; 'shift_flip' adds a horizontal flip and
    'shift_flip_blur' also blurs half of the images (sigma up to 1.2 px), so the classifier
    judges the softer images that generators make as fairly as sharp ones."""
    if mode == "none":
        return images
    n = len(images)
    draw_device = generator.device
    shift = torch.randint(-2, 3, (n, 2), generator=generator, device=draw_device).to(images.device).float()
    shift = shift * (2.0 / 28.0)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if mode in ("shift_flip", "shift_flip_blur"):
        flip = torch.rand(n, generator=generator, device=draw_device).to(images.device) < 0.5
        theta[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    background = images.amin(dim=(1, 2, 3), keepdim=True)
    moved = F.grid_sample(images - background, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    moved = moved + background
    if mode == "shift_flip_blur":
        sigma = torch.rand(n, generator=generator, device=draw_device).to(images.device) * 1.2
        blurred = torch.rand(n, generator=generator, device=draw_device).to(images.device) < 0.5
        moved = gaussian_blur(moved, torch.where(blurred, sigma, 0.0))
    return moved


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image [N, 1, H, W] with its own Gaussian sigma [N] (0 = unchanged), 5x5 kernel."""
    offsets = torch.arange(-2, 3, device=images.device, dtype=images.dtype)
    weights = torch.exp(-offsets.pow(2) / (2 * sigma.clamp_min(1e-3).pow(2)[:, None]))
    weights = weights / weights.sum(1, keepdim=True)  # [N, 5]; sigma -> 0 gives the identity kernel
    kernels = (weights[:, :, None] * weights[:, None, :]).unsqueeze(1)  # [N, 1, 5, 5]
    n, _, h, w = images.shape
    padded = F.pad(images.reshape(1, n, h, w), (2, 2, 2, 2), mode="replicate")
    return F.conv2d(padded, kernels, groups=n).reshape(n, 1, h, w)
