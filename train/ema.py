"""An exponential moving average of a network's weights (torch's AveragedModel), the usual cure for GAN sample noise."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def weight_average(module: nn.Module, decay: float) -> AveragedModel:
    """An average of `module`'s weights that starts at its current weights; `.update_parameters(module)` after
    each step. Its `.module` is a frozen copy of the network, under the network's own tensor names."""
    average = AveragedModel(module, multi_avg_fn=_warming_ema(decay))
    average.update_parameters(module)  # AveragedModel's first update copies: the average starts at the init
    average.module.requires_grad_(False).eval()
    return average


def _warming_ema(decay: float):
    """EMA whose decay warms up as min(decay, (1 + n) / (10 + n)) over the n-th update: early averages forget the
    random init instead of holding on to it for ~1 / (1 - decay) steps."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(averaged, current, n_averaged)

    return update
