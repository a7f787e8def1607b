"""Build the ONNX graph of a DARTS evaluation network straight from its genotype, in milliseconds.

`torch.onnx.export` traces the whole network (1-2 s per CIFAR architecture), longer than timing
it. Here the graph is written directly with `onnx.helper`, node for node as `lpm_zoo.networks`
computes (ReLU, convolutions, pools with count_include_pad=0, FactorizedReduce with its shifted
slice, concatenation), with every BatchNorm folded into the convolution before it (eval mode;
ONNX Runtime does the same fusion itself). Weights come from a PyTorch state dict (same
parameter names, so outputs match the module: tests/test_onnx_builder.py) or are drawn with
numpy from PyTorch's default initialisation, with no torch module built at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lpm_zoo.errors import LpmError
from lpm_zoo.layout import cell_plan, get_setting
from lpm_zoo.space import CONV_GEOMETRY, Genotype

OPSET = 17
BN_EPS = 1e-5  # nn.BatchNorm2d's default


class _Weights:
    """Parameters by PyTorch state-dict name: read from `state` or drawn like PyTorch's default init."""

    def __init__(self, state: Mapping[str, Any] | None, seed: int):
        self.state = None if state is None else {k: _np(v) for k, v in state.items()}
        self.rng = np.random.default_rng(seed)

    def _get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        assert self.state is not None
        if name not in self.state:
            raise LpmError(f"the state dict has no {name!r}: it is not this genotype's network")
        w = self.state[name]
        if tuple(w.shape) != tuple(shape):
            raise LpmError(f"{name} has shape {tuple(w.shape)}, the genotype's network needs {tuple(shape)}")
        return w.astype(np.float32, copy=False)

    def uniform(self, name: str, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        if self.state is not None:
            return self._get(name, shape)
        bound = np.float32(1.0 / np.sqrt(fan_in))  # kaiming_uniform(a=sqrt(5)) and the Linear bias
        return (self.rng.random(shape, dtype=np.float32) * (2 * bound) - bound).astype(np.float32)

    def bn(self, prefix: str, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) of an eval-mode BatchNorm2d."""
        if self.state is None:
            scale = np.full(c, 1.0 / np.sqrt(1.0 + BN_EPS), np.float32)
            return scale, np.zeros(c, np.float32)
        gamma = self._get(prefix + ".weight", (c,))
        beta = self._get(prefix + ".bias", (c,))
        mean = self._get(prefix + ".running_mean", (c,))
        var = self._get(prefix + ".running_var", (c,))
        scale = (gamma / np.sqrt(var.astype(np.float64) + BN_EPS)).astype(np.float32)
        return scale, (beta - mean * scale).astype(np.float32)


def _np(v: Any) -> np.ndarray:
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


class _Graph:
    """Nodes and initialisers of the graph being written, with fresh tensor names."""

    def __init__(self, weights: _Weights):
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.w = weights
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, arr: np.ndarray) -> str:
        n = self.name(hint)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), n))
        return n

    def node(self, op: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(self.h.make_node(op, inputs, [out], **attrs))
        return out

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], "relu")

    def conv_bn(self, x: str, conv: str, bn: str | None, c_in: int, c_out: int, k: int, stride: int = 1,
                pad: int = 0, dil: int = 1, groups: int = 1) -> str:
        """Conv2d (no bias) followed, when `bn` names one, by BatchNorm2d folded into its weights."""
        w = self.w.uniform(conv + ".weight", (c_out, c_in // groups, k, k), fan_in=c_in // groups * k * k)
        inputs = [x, None, None]
        if bn is not None:
            scale, shift = self.w.bn(bn, c_out)
            w = w * scale[:, None, None, None]
            inputs[2] = self.const("b", shift)
        inputs[1] = self.const("w", w.astype(np.float32))
        return self.node("Conv", [i for i in inputs if i is not None], "conv", kernel_shape=[k, k],
                         strides=[stride, stride], pads=[pad] * 4, dilations=[dil, dil], group=groups)

    def relu_conv_bn(self, x: str, prefix: str, c_in: int, c_out: int) -> str:
        return self.conv_bn(self.relu(x), prefix + ".op.1", prefix + ".op.2", c_in, c_out, 1)

    def factorized_reduce(self, x: str, prefix: str, c_in: int, c_out: int) -> str:
        """ReLU, two stride-2 1x1 convs (the second on x[:, :, 1:, 1:]), concat, BN (folded per half)."""
        r = self.relu(x)
        half = c_out // 2
        scale, shift = self.w.bn(prefix + ".bn", c_out)
        outs = []
        for k, src in enumerate((r, self.shifted(r))):
            w = self.w.uniform(f"{prefix}.conv_{k + 1}.weight", (half, c_in, 1, 1), fan_in=c_in)
            sl = slice(k * half, (k + 1) * half)
            w = w * scale[sl, None, None, None]
            outs.append(self.node("Conv", [src, self.const("w", w), self.const("b", shift[sl])], "conv",
                                  kernel_shape=[1, 1], strides=[2, 2], pads=[0] * 4))
        return self.node("Concat", outs, "cat", axis=1)

    def shifted(self, x: str) -> str:
        big = np.iinfo(np.int64).max
        return self.node("Slice", [x, self.const("starts", np.array([1, 1], np.int64)),
                                   self.const("ends", np.array([big, big], np.int64)),
                                   self.const("axes", np.array([2, 3], np.int64))], "slice")

    def op(self, name: str, x: str, prefix: str, c: int, stride: int) -> str:
        """One DARTS primitive on `x` (C channels in and out)."""
        if name == "max_pool_3x3":
            return self.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[stride] * 2, pads=[1] * 4)
        if name == "avg_pool_3x3":
            return self.node("AveragePool", [x], "avgpool", kernel_shape=[3, 3], strides=[stride] * 2,
                             pads=[1] * 4, count_include_pad=0)
        if name == "skip_connect":
            return x if stride == 1 else self.factorized_reduce(x, prefix, c, c)
        if name in ("sep_conv_3x3", "sep_conv_5x5"):
            k, p, _ = CONV_GEOMETRY[name]
            y = self.conv_bn(self.relu(x), prefix + ".op.1", None, c, c, k, stride, p, groups=c)
            y = self.conv_bn(y, prefix + ".op.2", prefix + ".op.3", c, c, 1)
            y = self.conv_bn(self.relu(y), prefix + ".op.5", None, c, c, k, 1, p, groups=c)
            return self.conv_bn(y, prefix + ".op.6", prefix + ".op.7", c, c, 1)
        if name in ("dil_conv_3x3", "dil_conv_5x5"):
            k, p, d = CONV_GEOMETRY[name]
            y = self.conv_bn(self.relu(x), prefix + ".op.1", None, c, c, k, stride, p, d, groups=c)
            return self.conv_bn(y, prefix + ".op.2", prefix + ".op.3", c, c, 1)
        raise LpmError(f"operation {name!r} has no ONNX form here (evaluation networks never use 'none')")

    def cell(self, g: Genotype, prefix: str, s0: str, s1: str, c_pp: int, c_p: int, c: int,
             reduction: bool, reduction_prev: bool) -> str:
        if reduction_prev:
            s0 = self.factorized_reduce(s0, prefix + ".preprocess0", c_pp, c)
        else:
            s0 = self.relu_conv_bn(s0, prefix + ".preprocess0", c_pp, c)
        s1 = self.relu_conv_bn(s1, prefix + ".preprocess1", c_p, c)
        pairs, concat = (g.reduce, g.reduce_concat) if reduction else (g.normal, g.normal_concat)
        states = [s0, s1]
        for k in range(len(pairs) // 2):
            hs = []
            for j in (2 * k, 2 * k + 1):
                name, idx = pairs[j]
                stride = 2 if reduction and idx < 2 else 1
                hs.append(self.op(name, states[idx], f"{prefix}._ops.{j}", c, stride))
            states.append(self.node("Add", hs, "add"))
        return self.node("Concat", [states[i] for i in concat], "cat", axis=1)


def build_onnx(genotype: Genotype, setting: str = "cifar", *, batch: int = 1, resolution: int | None = None,
               C: int | None = None, layers: int | None = None, num_classes: int | None = None,
               state_dict: Mapping[str, Any] | None = None, seed: int = 0) -> Any:
    """The ONNX ModelProto of `build_network(genotype, setting, ...)` in eval mode (input 'x', output 'logits').

    With `state_dict` (the module's `state_dict()`) it computes what that module computes;
    without, weights are drawn from `seed` with PyTorch's default initialisation.
    """
    from onnx import TensorProto, helper

    s = get_setting(setting)
    C, layers, num_classes = C or s.C, layers or s.layers, num_classes or s.num_classes
    res = resolution or s.resolution
    gr = _Graph(_Weights(state_dict, seed))
    x = "x"
    if s.network == "cifar":
        stem = gr.conv_bn(x, "stem.0", "stem.1", 3, 3 * C, 3, 1, 1)
        s0 = s1 = stem
        c_p = 3 * C
        plan = cell_plan(C, layers, c_p, reduction_prev=False)
    else:
        h = gr.conv_bn(x, "stem0.0", "stem0.1", 3, C // 2, 3, 2, 1)
        s0 = gr.conv_bn(gr.relu(h), "stem0.3", "stem0.4", C // 2, C, 3, 2, 1)
        s1 = gr.conv_bn(gr.relu(s0), "stem1.1", "stem1.2", C, C, 3, 2, 1)
        c_p = C
        plan = cell_plan(C, layers, c_p, reduction_prev=True)
    for p in plan:
        out = gr.cell(genotype, f"cells.{p.index}", s0, s1, p.c_prev_prev, p.c_prev, p.c, p.reduction,
                      p.reduction_prev)
        s0, s1 = s1, out
        c_p = p.c_out
    if s.network == "cifar":
        pooled = gr.node("GlobalAveragePool", [s1], "gap")
    else:
        pooled = gr.node("AveragePool", [s1], "avgpool7", kernel_shape=[7, 7], strides=[7, 7])
    flat = gr.node("Flatten", [pooled], "flatten", axis=1)
    wl = gr.w.uniform("classifier.weight", (num_classes, c_p), fan_in=c_p)
    bl = gr.w.uniform("classifier.bias", (num_classes,), fan_in=c_p)
    gr.nodes.append(helper.make_node("Gemm", [flat, gr.const("fc_w", wl), gr.const("fc_b", bl)], ["logits"],
                                     transB=1))
    graph = helper.make_graph(
        gr.nodes, f"darts_{setting}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, res, res])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, num_classes])],
        initializer=gr.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lpm-zoo")
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    return model
