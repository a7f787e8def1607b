"""A search cell's training-mode forward computed per input state instead of per edge: the same
function of the weights and α as the per-edge loop (`SearchCell.forward_plain`), with less work.

Each state feeds one edge per later node, and every op of those edges reads the same input, so per
state: one ReLU for all edges; each primitive's depthwise / pointwise convolutions of all edges as
one grouped convolution; the pools (and their batch norm: same input, same batch statistics) once;
the `none` op not at all (its output is zero, so its weight's gradient is zero either way); the α
(and PC-DARTS β) weights folded into the last batch norm as its per-channel scale. PC-DARTS' bypass
channels and channel shuffle are linear, so a node shuffles the β-weighted sum of its edges once.
Batch-norm running statistics are updated module by module exactly as the per-edge loop does.
Only for training mode: in eval mode each edge's batch norm uses its own running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lpm_zoo.space import N_INPUTS, N_NODES, PRIMITIVES

AVG, MAX, SKIP = (PRIMITIVES.index(n) for n in ("avg_pool_3x3", "max_pool_3x3", "skip_connect"))
SEPS = [PRIMITIVES.index(n) for n in ("sep_conv_3x3", "sep_conv_5x5")]
DILS = [PRIMITIVES.index(n) for n in ("dil_conv_3x3", "dil_conv_5x5")]
NODE_START = [sum(N_INPUTS + i for i in range(k)) for k in range(N_NODES)]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` channel groups (PC-DARTS), so each step sees other channels."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def batch_norm(x: torch.Tensor, modules: list[nn.BatchNorm2d], scale: torch.Tensor | None = None) -> torch.Tensor:
    """Training-mode batch norm of `x`, whose channels are those of `modules` in turn, times `scale`
    per channel; each module's running statistics are updated as its own forward would."""
    first = modules[0]
    if len(modules) == 1:
        mean, var = first.running_mean, first.running_var
    else:
        mean = torch.cat([m.running_mean for m in modules])
        var = torch.cat([m.running_var for m in modules])
    out = F.batch_norm(x, mean, var, scale, None, True, first.momentum, first.eps)
    with torch.no_grad():
        if len(modules) > 1:
            c = first.num_features
            torch._foreach_copy_([m.running_mean for m in modules], list(mean.split(c)))
            torch._foreach_copy_([m.running_var for m in modules], list(var.split(c)))
        torch._foreach_add_([m.num_batches_tracked for m in modules], 1)
    return out


def shared_batch_norm(x: torch.Tensor, modules: list[nn.BatchNorm2d]) -> torch.Tensor:
    """One batch norm of `x` standing for several modules fed the same `x` (same output); each module's
    running statistics get the update its own forward would give them."""
    first = modules[0]
    rest = modules[1:]
    keep = 1.0 - first.momentum
    old = (first.running_mean.clone(), first.running_var.clone()) if rest else ()
    out = batch_norm(x, modules[:1])
    if rest:
        with torch.no_grad():
            step_mean = first.running_mean - keep * old[0]  # momentum * batch statistic
            step_var = first.running_var - keep * old[1]
            for stat, step in (("running_mean", step_mean), ("running_var", step_var)):
                tensors = [getattr(m, stat) for m in rest]
                torch._foreach_mul_(tensors, keep)
                torch._foreach_add_(tensors, [step] * len(tensors))
            torch._foreach_add_([m.num_batches_tracked for m in rest], 1)
    return out


def _conv(x: torch.Tensor, convs: list[nn.Conv2d], shared_input: bool = False) -> torch.Tensor:
    """`convs` (one per edge, same geometry) as one conv: each on its part of `x` (edge-major channels),
    or all on the whole `x` with `shared_input`; edge-major output channels."""
    first = convs[0]
    weight = torch.cat([c.weight for c in convs]) if len(convs) > 1 else first.weight
    groups = first.groups * (1 if shared_input else len(convs))
    d = first.dilation[0]
    if d > 1 and _phases_fit(x, first):
        return _dilated_by_phases(x, weight, first.stride[0], d, groups)
    return F.conv2d(x, weight, None, first.stride, first.padding, first.dilation, groups)


def _phases_fit(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether `conv` (dilation d, "same" padding, stride 1 or d) can run on the d×d phase grids of `x`."""
    d, k = conv.dilation[0], conv.kernel_size[0]
    return (conv.dilation == (d, d) and conv.kernel_size == (k, k) and conv.padding == (d * (k - 1) // 2,) * 2
            and conv.stride[0] in (1, d) and conv.stride[0] == conv.stride[1]
            and x.shape[2] % d == 0 and x.shape[3] % d == 0)


def _dilated_by_phases(x: torch.Tensor, weight: torch.Tensor, stride: int, d: int, groups: int) -> torch.Tensor:
    """A dilation-d "same" convolution as the undilated one on the d×d phase grids of `x` (atrous convolution by
    space-to-batch): the same products and sums, through the fast undilated kernels. Stride d reads phase (0, 0) only."""
    k = weight.shape[-1]
    if stride == d:
        return F.conv2d(x[:, :, ::d, ::d], weight, None, 1, (k - 1) // 2, 1, groups)
    b, c, h, w = x.shape
    phases = x.reshape(b, c, h // d, d, w // d, d).permute(0, 3, 5, 1, 2, 4).reshape(b * d * d, c, h // d, w // d)
    y = F.conv2d(phases, weight, None, 1, (k - 1) // 2, 1, groups)
    co = y.shape[1]
    return y.reshape(b, d, d, co, h // d, w // d).permute(0, 3, 4, 1, 5, 2).reshape(b, co, h, w)


def _scale(w: torch.Tensor, c: int) -> torch.Tensor:
    """Per-edge weights (n,) as a per-channel batch-norm scale (n*c,)."""
    return w[:, None].expand(-1, c).reshape(-1)


def _dw_pw_bn(x: torch.Tensor, blocks: list[nn.Sequential], start: int, scale: torch.Tensor | None) -> torch.Tensor:
    """Depthwise conv, pointwise conv, batch norm (modules start..start+2 of each edge's block) for all edges."""
    y = _conv(x, [b[start] for b in blocks])
    y = _conv(y, [b[start + 1] for b in blocks])
    return batch_norm(y, [b[start + 2] for b in blocks], scale)


def _factorized_reduce(r: torch.Tensor, frs: list[nn.Module], scale: torch.Tensor) -> torch.Tensor:
    """`FactorizedReduce` of every edge on the ReLU'd input `r`, scaled per edge."""
    n = len(frs)
    a = _conv(r, [f.conv_1 for f in frs], shared_input=True).unflatten(1, (n, -1))
    b = _conv(r[:, :, 1:, 1:], [f.conv_2 for f in frs], shared_input=True).unflatten(1, (n, -1))
    y = torch.cat([a, b], dim=2).flatten(1, 2)
    return batch_norm(y, [f.bn for f in frs], scale)


def state_edges(cell: nn.Module, x: torch.Tensor, edges: list[int], w: torch.Tensor,
                stride: int) -> torch.Tensor:
    """The weighted mixed-op outputs of the `edges` reading state `x`, edge-major channels (B, n*c, H', W').

    `w` (n, 8) holds each edge's op weights (softmax(α), times β for PC-DARTS)."""
    n = len(edges)
    c = x.shape[1]
    ops = [cell._ops[e]._ops for e in edges]
    r = F.relu(x)
    r_rep = r.repeat(1, n, 1, 1) if n > 1 else r
    terms = []
    for k in SEPS:
        blocks = [o[k].op for o in ops]
        y = F.relu(_dw_pw_bn(r_rep, blocks, 1, None))
        terms.append(_dw_pw_bn(y, blocks, 5, _scale(w[:, k], c)))
    for k in DILS:
        terms.append(_dw_pw_bn(r_rep, [o[k].op for o in ops], 1, _scale(w[:, k], c)))
    if stride > 1:
        terms.append(_factorized_reduce(r, [o[SKIP] for o in ops], _scale(w[:, SKIP], c)))
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    avg_pool, max_pool = ops[0][AVG][0], ops[0][MAX][0]
    shared = [shared_batch_norm(avg_pool(x), [o[AVG][1] for o in ops]),
              shared_batch_norm(max_pool(x), [o[MAX][1] for o in ops])]
    cols = [AVG, MAX]
    if stride == 1:
        shared.append(x)
        cols.append(SKIP)
    stacked = torch.stack(shared, dim=1).flatten(2)  # (B, s, c*H'*W')
    mixed = torch.matmul(w[:, cols], stacked)  # (B, n, c*H'*W')
    return out + mixed.view_as(out)


def fused_cell_forward(cell: nn.Module, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                       edge_weights: torch.Tensor | None) -> torch.Tensor:
    """`SearchCell.forward` in training mode, per input state (see the module docstring)."""
    k = cell._ops[0].k
    if edge_weights is not None:
        weights = weights * edge_weights[:, None]
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    parts: list[list[torch.Tensor]] = [[] for _ in range(N_NODES)]  # the mixed-op sums reaching each node
    bypass: list[list[torch.Tensor]] = [[] for _ in range(N_NODES)]  # PC-DARTS: β-weighted bypass channels
    for j in range(N_INPUTS + N_NODES - 1):
        if j >= N_INPUTS:
            states.append(_node(parts[j - N_INPUTS], bypass[j - N_INPUTS], k))
        h = states[j]
        first_node = max(0, j - N_INPUTS + 1)
        edges = [NODE_START[node] + j for node in range(first_node, N_NODES)]
        stride = 2 if cell.reduction and j < N_INPUTS else 1
        c = h.shape[1] // k
        # split, not slicing: a split's gradient is the concatenation of its parts' gradients, where each
        # slice's gradient would be a zero tensor of the whole size, filled and summed
        xa, xb = h.split([c, h.shape[1] - c], dim=1) if k > 1 else (h, None)
        out = state_edges(cell, xa, edges, weights[edges], stride)
        for node, part in zip(range(first_node, N_NODES), out.split(c, dim=1)):
            parts[node].append(part)
        if k > 1:
            if stride > 1:
                xb = cell._ops[edges[0]].mp(xb)
            for node, e in zip(range(first_node, N_NODES), edges):
                bypass[node].append(edge_weights[e] * xb)
    states.append(_node(parts[-1], bypass[-1], k))
    return torch.cat(states[-cell._multiplier:], dim=1)


def _node(parts: list[torch.Tensor], bypass: list[torch.Tensor], k: int) -> torch.Tensor:
    """A node's state: the sum of its edges (PC-DARTS: with the bypass channels, shuffled)."""
    s = parts[0]
    for p in parts[1:]:
        s = s + p
    if k == 1:
        return s
    b = bypass[0]
    for p in bypass[1:]:
        b = b + p
    return channel_shuffle(torch.cat([s, b], dim=1), k)
