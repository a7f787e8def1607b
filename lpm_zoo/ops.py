"""The DARTS operations as a small table keyed by primitive name, exactly as DARTS defines them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lpm_zoo.space import CONV_GEOMETRY


class ReLUConvBN(nn.Module):
    """ReLU, convolution, batch norm: the 1x1 preprocessing of cell inputs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _relu_dw_pw_bn(c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                   affine: bool) -> list[nn.Module]:
    """ReLU, depthwise (optionally dilated) convolution, pointwise convolution, batch norm: DARTS' separable block."""
    return [
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
        nn.BatchNorm2d(c_out, affine=affine),
    ]


class DilConv(nn.Module):
    """ReLU, dilated depthwise convolution, pointwise convolution, batch norm."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True
    ):
        super().__init__()
        self.op = nn.Sequential(*_relu_dw_pw_bn(c_in, c_out, kernel, stride, padding, dilation, affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """The depthwise-separable block applied twice (the first one carries the stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            *_relu_dw_pw_bn(c_in, c_in, kernel, stride, padding, 1, affine),
            *_relu_dw_pw_bn(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    """skip_connect at stride 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` operation: zeros of the output shape (used by the search network only)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convolutions, concatenated: skip_connect at stride 2."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        out = torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        return self.bn(out)


OpFactory = Callable[[int, int, bool], nn.Module]

def _sep(name: str) -> OpFactory:
    """The factory of the SepConv primitive `name`, with the kernel and padding `CONV_GEOMETRY` gives it."""
    k, pad, _ = CONV_GEOMETRY[name]
    return lambda C, stride, affine: SepConv(C, C, k, stride, pad, affine)


def _dil(name: str) -> OpFactory:
    """The factory of the DilConv primitive `name`, with the kernel, padding and dilation `CONV_GEOMETRY` gives it."""
    k, pad, dil = CONV_GEOMETRY[name]
    return lambda C, stride, affine: DilConv(C, C, k, stride, pad, dil, affine)


OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": _sep("sep_conv_3x3"),
    "sep_conv_5x5": _sep("sep_conv_5x5"),
    "dil_conv_3x3": _dil("dil_conv_3x3"),
    "dil_conv_5x5": _dil("dil_conv_5x5"),
}
"""Primitive name -> factory(C, stride, affine): the DARTS operation table."""
