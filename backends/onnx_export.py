"""Generic `nn.Module` -> ONNX through `torch.onnx.export` (slow; DARTS networks use `onnx_builder` instead)."""

from __future__ import annotations

import io
import warnings
from typing import Any


def to_onnx(model: Any, example_input: Any, opset: int = 17) -> Any:
    """The ONNX ModelProto of `model` traced on `example_input` (input 'x', output 'logits')."""
    import onnx
    import torch

    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no onnxscript needed
        torch.onnx.export(model.eval(), (example_input,), buf, input_names=["x"], output_names=["logits"],
                          opset_version=opset, dynamo=False)
    return onnx.load_from_string(buf.getvalue())
