"""Parameter and multiply-add counts of evaluation networks, counted the way the NAS papers do.

Parameters: every parameter outside the auxiliary head (DARTS' `count_parameters_in_MB`).
Multiply-adds: one per weight use in convolutions and fully connected layers, i.e.
`k_h * k_w * C_in / groups * C_out * H_out * W_out` per convolution and `in * out` per linear
layer, for one image. Batch norm, ReLU, pooling and additions are not counted (they are
memory-bound; the mobile-setting tables count only multiply-adds of weights).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lpm_zoo.networks import SETTINGS, build_network
from lpm_zoo.published import DARTS_V2
from lpm_zoo.space import PRIMITIVES, Genotype


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


def normal_op_madds(setting: str = "cifar", reduce: tuple | None = None) -> tuple[int, list[int]]:
    """Multiply-adds of an evaluation network as (constant, per-op table over PRIMITIVES), per image.

    With the reduction cell fixed (`reduce`, DARTS_V2's by default) and normal cells always
    concatenating nodes 2..5, a network's multiply-adds are a constant plus, for each of the 8
    kept edges of the normal cell, a term that depends only on the edge's operation (every
    normal-cell edge has stride 1 and the cell's width, whatever its input). So
    `madds = constant + sum(table[op] for op in cell)`; `cell_madds` evaluates it for millions
    of cells at once. Computed with `count_madds` (a few network builds) and cached.
    """

    red = tuple(tuple(p) for p in (reduce if reduce is not None else DARTS_V2.reduce))
    return _normal_op_madds(setting, red)


_MADDS_CACHE: dict[tuple, tuple[int, list[int]]] = {}


def _normal_op_madds(setting: str, reduce: tuple) -> tuple[int, list[int]]:
    key = (setting, reduce)
    if key not in _MADDS_CACHE:
        s = SETTINGS[setting]
        shape = (1, 3, s.resolution, s.resolution)

        def uniform(op: str) -> int:
            cell = tuple((op, i) for _ in range(4) for i in (0, 1))
            with torch.random.fork_rng(devices=[]):
                return count_madds(build_network(Genotype(normal=cell, reduce=reduce), setting), shape)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # eight small forward passes: one thread avoids oversubscription
        try:
            const = uniform("skip_connect")  # identity: no multiply-adds on any edge
            table = [0] * len(PRIMITIVES)  # 'none' (zero) has none either
            for k, op in enumerate(PRIMITIVES[1:], start=1):
                extra = uniform(op) - const
                assert extra % 8 == 0, f"{op}: {extra} multiply-adds do not split over 8 edges"
                table[k] = extra // 8
        finally:
            torch.set_num_threads(threads)
        _MADDS_CACHE[key] = (const, table)
    return _MADDS_CACHE[key]


_BOTH_CACHE: dict[str, tuple[int, list[int], list[int], list[int]]] = {}


def both_op_madds(setting: str = "cifar") -> tuple[int, list[int], list[int], list[int]]:
    """Multiply-adds of whole genotypes as (constant, normal table, reduction table from an input,
    reduction table from an intermediate node), each over PRIMITIVES, per image.

    In a reduction cell an edge from an input (c_{k-2}, c_{k-1}) has stride 2 (its `skip_connect`
    is a FactorizedReduce), an edge from an intermediate node stride 1; both run at the cell's
    width. So `madds = constant + Σ normal[op] + Σ reduce_in[op] (edges from inputs) + Σ
    reduce_mid[op] (edges from nodes)`, with the constant that of the all-`skip_connect`
    genotype whose reduction edges all come from the inputs. Computed from a few network builds
    (`count_madds`) and cached; `genotype_madds` checks it against a build in the tests.
    """

    if setting in _BOTH_CACHE:
        return _BOTH_CACHE[setting]
    s = SETTINGS[setting]
    shape = (1, 3, s.resolution, s.resolution)
    skips_in = tuple(("skip_connect", i) for _ in range(4) for i in (0, 1))

    def madds(normal: tuple, reduce: tuple) -> int:
        with torch.random.fork_rng(devices=[]):
            return count_madds(build_network(Genotype(normal=normal, reduce=reduce), setting), shape)

    def chain(op: str) -> tuple:  # node 2 from both inputs; nodes 3-5 each from node 2 (op) and input 0 (skip)
        return (("skip_connect", 0), ("skip_connect", 1)) + tuple(p for _ in range(3) for p in ((op, 2), ("skip_connect", 0)))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        const = madds(skips_in, skips_in)
        normal, reduce_in, reduce_mid = [0] * len(PRIMITIVES), [0] * len(PRIMITIVES), [0] * len(PRIMITIVES)
        fr = (madds(skips_in, chain("skip_connect")) - const) // -3  # a FactorizedReduce edge, both cells
        for k, op in enumerate(PRIMITIVES[1:], start=1):
            uniform = tuple((op, i) for _ in range(4) for i in (0, 1))
            normal[k] = (madds(uniform, skips_in) - const) // 8
            reduce_in[k] = (madds(skips_in, uniform) - const) // 8
            # from an intermediate node: the op's cost at stride 1, less the FactorizedReduce the constant counted
            reduce_mid[k] = (madds(skips_in, chain(op)) - madds(skips_in, chain("skip_connect"))) // 3 - fr
        reduce_mid[PRIMITIVES.index("skip_connect")] = -fr
    finally:
        torch.set_num_threads(threads)
    _BOTH_CACHE[setting] = (const, normal, reduce_in, reduce_mid)
    return _BOTH_CACHE[setting]


def cell_madds(ops: np.ndarray, setting: str = "cifar", reduce: tuple | None = None) -> np.ndarray:
    """Multiply-adds per image of the evaluation networks of many normal cells, from their (N, 8) `ops`."""
    import numpy as np

    const, table = normal_op_madds(setting, reduce)
    return const + np.asarray(table, dtype=np.int64)[np.asarray(ops, dtype=np.int64)].sum(axis=1)
