"""ExecuTorch with the XNNPACK delegate: the runtime PyTorch deploys on Android and iOS CPUs, run here on x86.

`prepare` exports the nn.Module (`torch.export`), lowers it to the XNNPACK delegate
(`to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`), serialises the program
(`.pte` bytes, kept in memory) and loads it with ExecuTorch's Python runtime (`executorch.runtime`).
fp32 only (no quantisation). The XNNPACK thread pool is process-wide and is set to `threads`
(default 1) before each load; with one thread XNNPACK computes on the calling thread, so the
protocol's thread clock sees the whole run (tests/test_executorch_backend.py checks it).

Lowering is slow: the pass pipeline is Python, so a 20-cell CIFAR network took 2.5 minutes to prepare on a
2-core VM (timing it takes seconds). Two things halve that without changing the program XNNPACK runs: batch
norms are folded into their convolutions first (`batchnorm_fold`, the fusion XNNPACK makes itself), and
Python's cyclic garbage collector is paused while the passes allocate their millions of small objects
(docs/runtimes.md, "Its cost"; the profile is in BENCHMARKS.md, "ExecuTorch: lowering halved").
"""

from __future__ import annotations

import gc
import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from lpm_zoo.backends.base import Backend, Prepared
from lpm_zoo.backends.batchnorm_fold import fold_batch_norms
from lpm_zoo.backends.quiet import quiet_stderr
from lpm_zoo.backends.registry import register_backend
from lpm_zoo.backends.timing import host_times
from lpm_zoo.device import parse_device
from lpm_zoo.errors import LpmError

INSTALL = "pip install 'lpm-zoo[executorch]'"
#: the delegate every supported op is lowered to, as ExecuTorch's runtime registers it
DELEGATE = "XnnpackBackend"


def _runtime() -> tuple[Any, Any]:
    """ExecuTorch's Python runtime and its pybindings module (thread pool control), or a one-line LpmError."""
    try:
        with warnings.catch_warnings(), quiet_stderr("executorch (loading)"):
            warnings.simplefilter("ignore")
            import executorch.extension.pybindings.portable_lib as portable_lib
            from executorch.runtime import Runtime
    except ImportError as e:
        raise LpmError(f"executorch is not installed or does not load ({str(e)[:120]}); {INSTALL}") from None
    return Runtime.get(), portable_lib


def delegation_of(edge: Any) -> dict[str, Any]:
    """What a lowered edge program delegated: its calls into a delegate and the operators left outside one."""
    calls, outside = 0, {}
    for node in edge.exported_program().graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(getattr(node.target, "__name__", node.target))
        if "executorch_call_delegate" in name:
            calls += 1
        elif name != "getitem":
            outside[name] = outside.get(name, 0) + 1
    return {"delegate_calls": calls, "ops_outside_delegate": dict(sorted(outside.items()))}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic collector off for the block (the lowering passes allocate millions of short-lived objects
    and the collector's scans of the growing heap cost 10-25% of the lowering), then one collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def _lower(model: Any, x: Any) -> tuple[bytes, dict[str, Any]]:
    """The `.pte` program of `model` on input `x` with every supported op in the XNNPACK delegate, and a summary of
    what was delegated (calls into the delegate, operators left outside it, batch norms folded beforehand)."""
    import torch

    try:
        with warnings.catch_warnings(), quiet_stderr("executorch (loading the exporter)"):
            warnings.simplefilter("ignore")
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
    except ImportError as e:
        raise LpmError(f"executorch's exporter does not load ({str(e)[:120]}); {INSTALL}") from None
    model, folded = fold_batch_norms(model)
    with warnings.catch_warnings(), quiet_stderr("executorch (lowering to XNNPACK)"), _gc_paused():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            exported = torch.export.export(model, (x,))
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        delegation = delegation_of(edge)
        program = edge.to_executorch().buffer
    return bytes(program), {**delegation, "batchnorms_folded": folded}


@register_backend("executorch")
class ExecutorchBackend(Backend):
    """An nn.Module exported with torch.export, lowered to ExecuTorch's XNNPACK delegate (fp32), run by its runtime."""

    devices = ("cpu",)
    model_format = "torch"
    library = ("executorch",)

    def available(self, device: str = "cpu") -> tuple[bool, str]:
        """Usable when executorch is installed (checked without importing it: `lpm backends` stays quick)."""
        if parse_device(device)[0] != "cpu":
            return False, "ExecuTorch's XNNPACK delegate runs on the CPU only"
        if importlib.util.find_spec("executorch") is None:
            return False, f"executorch not installed ({INSTALL})"
        return True, ""

    def prepare(self, model: Any, example_input: Any, device: str = "cpu", threads: int = 1, **opts: Any) -> Prepared:
        """Export, lower to XNNPACK and load `model`; the XNNPACK thread pool is set to `threads`."""
        import torch

        if opts:
            raise LpmError(f"executorch backend: unknown option(s) {', '.join(map(str, opts))}; it takes none")
        self.check(device)
        if not isinstance(model, torch.nn.Module):
            raise LpmError("the executorch backend exports a torch.nn.Module; give it one (not an ONNX graph)")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise LpmError(f"executorch backend: threads must be an integer >= 1, got {str(threads)[:40]!r}")
        if not isinstance(example_input, torch.Tensor) or example_input.dtype != torch.float32:
            raise LpmError("the executorch backend times fp32 models: the example input must be a float32 tensor")
        runtime, portable_lib = _runtime()
        x = example_input.detach().to("cpu").contiguous()
        program, delegation = _lower(model.eval(), x)
        if delegation["delegate_calls"] == 0:
            raise LpmError("ExecuTorch's XNNPACK partitioner delegated nothing of this model: refusing to time "
                           "ExecuTorch's portable kernels as XNNPACK")
        with quiet_stderr("executorch (loading the program)"):  # its thread pool and cpuinfo log each step
            portable_lib._unsafe_reset_threadpool(threads)  # process-wide, like torch.set_num_threads
            got_threads = int(portable_lib._threadpool_get_thread_count())
            if got_threads != threads:
                raise LpmError(f"asked ExecuTorch's thread pool for {threads} thread(s), it has {got_threads}")
            if DELEGATE not in runtime.backend_registry.registered_backend_names:
                raise LpmError(f"this executorch build has no {DELEGATE} in its runtime; {INSTALL}")
            loaded = runtime.load_program(program)  # must outlive its method: the method reads the program's memory
            method = loaded.load_method("forward")
        torch.set_flush_denormal(True)  # denormals from random weights must not slow some networks down (as torch)
        inputs = [x]

        def run() -> Any:
            return method.execute(inputs)

        def output() -> Any:
            return run()[0].detach().numpy().copy()

        info = {"device_kind": "cpu", "threads": got_threads, "delegate": DELEGATE, "precision": "fp32",
                "flush_denormal": True}
        network = {"program_bytes": len(program), **delegation}  # this network's facts, not settings
        return Prepared(run, output=output, info=info, keep=(loaded, method, inputs), network=network)

    def run_timed(self, prepared: Prepared, n: int, clock: str = "wall") -> list[float]:
        """Per-run ms on the host clock (one thread computes on the calling thread: the thread clock is valid)."""
        return host_times(prepared.run, n, clock)

    def runtime_info(self, device: str = "cpu") -> dict[str, Any]:
        """executorch and torch versions, the delegate and precision, the runtime's registered delegates (the
        thread count actually set is in each prepared model's `info`)."""

        import torch

        runtime, _ = _runtime()
        return {"executorch": metadata.version("executorch"), "torch": torch.__version__, "delegate": DELEGATE,
                "precision": "fp32", "registered_backends": sorted(runtime.backend_registry.registered_backend_names)}
