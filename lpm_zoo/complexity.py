"""Parameter and multiply-add counts of evaluation networks, counted the way the NAS papers do.

Parameters: every parameter outside the auxiliary head (DARTS' `count_parameters_in_MB`).
Multiply-adds: one per weight use in convolutions and fully connected layers, i.e.
`k_h * k_w * C_in / groups * C_out * H_out * W_out` per convolution and `in * out` per linear
layer, for one image. Batch norm, ReLU, pooling and additions are not counted (they are
memory-bound; the mobile-setting tables count only multiply-adds of weights).
"""

from __future__ import annotations

import torch
from torch import nn

from lpm_zoo.networks import SETTINGS, build_network
from lpm_zoo.space import Genotype


def count_params(model: nn.Module) -> int:
    """Number of parameters, auxiliary head excluded."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)


def count_madds(model: nn.Module, input_size: tuple[int, int, int, int]) -> int:
    """Multiply-adds of one forward pass on `input_size` (N, C, H, W), divided by N."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += kh * kw * (m.in_channels // m.groups) * out.numel()

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * out.numel()

    handles = []
    for name, m in model.named_modules():
        if "auxiliary" in name:
            continue
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total // input_size[0]


def genotype_complexity(genotype: Genotype, setting: str = "cifar") -> dict[str, float]:
    """Parameters and multiply-adds (both in millions) of `genotype`'s evaluation network."""
    s = SETTINGS[setting]
    model = build_network(genotype, setting)
    return {
        "params_M": count_params(model) / 1e6,
        "madds_M": count_madds(model, (1, 3, s.resolution, s.resolution)) / 1e6,
    }
