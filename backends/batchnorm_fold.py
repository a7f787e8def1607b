"""Fold each eval-mode BatchNorm2d into the Conv2d just before it: the fusion XNNPACK makes anyway, done up front.

A lowering pipeline such as ExecuTorch's runs dozens of Python passes over every node and looks up every
parameter and buffer per node, so a network's batch norms (four tensors and a counter each, and a node)
make preparing it slower without changing what runs: XNNPACK's own pass fuses a convolution's batch norm
into the convolution's weights and bias. Folding them in PyTorch first gives the delegate the same
convolutions (weights equal to rounding), in about half the lowering time (BENCHMARKS.md, "ExecuTorch:
lowering halved"). Only a Conv2d directly followed by a BatchNorm2d in one nn.Sequential is folded; a batch norm
after anything else (a concatenation, a pooling) is left as it is.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of eval-mode `model` with every Conv2d -> BatchNorm2d pair of an nn.Sequential folded into one
    Conv2d (the batch norm replaced by nn.Identity), and the number of pairs folded. `model` is not changed."""
    if model.training:
        raise ValueError("fold_batch_norms folds running statistics: put the model in eval mode first")
    folded = copy.deepcopy(model)
    count = 0
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and not conv.training and not bn.training):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
                count += 1
    return folded, count
