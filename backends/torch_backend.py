"""Eager PyTorch: CPU with a fixed thread count; CUDA with CUDA events on a side stream (opt-in CUDA graphs),
TF32 off so fp32 is fp32 on Ampere and newer too."""

from __future__ import annotations

from typing import Any

from lpm_zoo.backends.base import Backend, Option, Prepared
from lpm_zoo.backends.device import cuda_missing, parse_device
from lpm_zoo.backends.registry import register_backend
from lpm_zoo.backends.timing import cuda_event_times, host_times, side_stream
from lpm_zoo.errors import LpmError


@register_backend("torch")
class TorchBackend(Backend):
    """`torch.nn.Module` forward passes in inference mode, fp32 as given."""

    devices = ("cpu", "cuda")
    model_format = "torch"
    library = ("torch",)
    options = {"cuda_graph": Option(bool, "replay the forward pass as one captured CUDA graph", devices=("cuda",))}

    def available(self, device: str = "cpu") -> tuple[bool, str]:
        try:
            import torch  # noqa: F401  (presence check)
        except ImportError:
            return False, "torch not installed"
        kind, index = parse_device(device)
        why = cuda_missing(index) if kind == "cuda" else ""
        return not why, why

    def prepare(self, model: Any, example_input: Any, device: str = "cpu", threads: int = 1,
                cuda_graph: bool = False, **opts: Any) -> Prepared:
        import torch

        if opts:
            raise LpmError(f"torch backend: unknown option(s) {', '.join(opts)}; known: cuda_graph")
        if not isinstance(model, torch.nn.Module):
            raise LpmError("the torch backend times a torch.nn.Module; give it one (not an ONNX graph)")
        self.check(device)
        kind, index = parse_device(device)
        model = model.eval()
        torch.set_num_threads(threads)  # the thread count is part of what is measured (and recorded)
        if kind == "cpu":
            torch.set_flush_denormal(True)  # denormals from random weights must not slow some networks down
            x = example_input.to("cpu")

            def run() -> Any:
                with torch.inference_mode():
                    return model(x)

            return Prepared(run, output=lambda: run().detach().numpy(),
                            info={"device_kind": "cpu", "threads": threads, "flush_denormal": True})
        dev = torch.device("cuda", index)
        torch.backends.cudnn.benchmark = True
        set_tf32(False)
        model = model.to(dev)
        x = example_input.to(dev)
        stream = side_stream(dev)  # waits for the copies of the weights and the input
        info = {"device_kind": "cuda", "cudnn_benchmark": True, "cuda_graph": bool(cuda_graph), "stream": "side",
                "precision": "fp32", "tf32": False}
        if cuda_graph:
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(3):  # warm-up on the side stream before capture, as CUDA graphs require
                    model(x)
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph, stream=stream):
                static_out = model(x)

            def run() -> Any:
                graph.replay()
                return static_out
        else:
            def run() -> Any:
                with torch.inference_mode():
                    return model(x)

        def output() -> Any:
            with torch.cuda.stream(stream):
                out = run()
            stream.synchronize()
            return out.detach().cpu().numpy()

        return Prepared(run, output=output, info=info, stream=stream)

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        if prepared.stream is None:
            return host_times(prepared.run, n, clock)
        return cuda_event_times(prepared.run, prepared.stream, n)

    def runtime_info(self, device: str = "cpu") -> dict[str, Any]:
        import torch

        info: dict[str, Any] = {"torch": torch.__version__, "intra_op_threads": torch.get_num_threads(),
                                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        if parse_device(device)[0] == "cuda" and torch.cuda.is_available():
            info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        return info


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 in cuDNN convolutions and cuBLAS matmuls (process-wide; on by default for cuDNN),
    through torch's `fp32_precision` settings where it has them (2.9+), else `allow_tf32`."""
    import torch

    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "fp32_precision"):  # all of them: torch refuses to read a mix of the two APIs' settings
        for setting in (cudnn, cudnn.conv, cudnn.rnn, torch.backends.cuda.matmul):
            setting.fp32_precision = "tf32" if enabled else "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
