"""ExecuTorch lowering of one `cifar-b1` network: the plain path against the backend's (batch norms folded, collector
paused), timed in turns in one process, with the two programs' outputs and delegate coverage compared.

    python -m benchmarks.executorch_lowering [--genotype DARTS_V2] [--rounds 2]

Needs `pip install 'lpm-zoo[executorch]'`. Prints one JSON object: per path the median wall seconds of the export,
the lowering and the serialisation, the delegate calls, the operators left outside the delegate, the program's bytes,
and the largest difference between the two programs' outputs (and each against eager torch). BENCHMARKS.md,
"ExecuTorch: lowering halved", has the figures and the profile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Any

import torch

from lpm_zoo.backends.executorch_backend import _lower, delegation_of
from lpm_zoo.profiles import get_profile
from lpm_zoo.published import get_genotype


def _plain(model: torch.nn.Module, x: torch.Tensor) -> tuple[bytes, dict[str, Any], dict[str, float]]:
    """The path the backend took before 2026-12-07: export, `to_edge_transform_and_lower`, `to_executorch`."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    t0 = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(model, (x,))
    t1 = time.perf_counter()
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    t2 = time.perf_counter()
    info = delegation_of(edge)
    program = bytes(edge.to_executorch().buffer)
    t3 = time.perf_counter()
    return program, info, {"export_s": t1 - t0, "lower_s": t2 - t1, "serialise_s": t3 - t2}


def _run(program: bytes, x: torch.Tensor) -> torch.Tensor:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(program).load_method("forward")
    return method.execute([x])[0].detach().clone()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genotype", default="DARTS_V2", help="a published name (default DARTS_V2)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of (plain, ours) (default 2)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    prof = get_profile("cifar-b1")
    model = prof.build(get_genotype(args.genotype)).eval()
    x = prof.example_input()
    with torch.no_grad():
        eager = model(x)
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    result: dict[str, Any] = {"genotype": args.genotype, "profile": "cifar-b1", "rounds": args.rounds}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        program, info, split = _plain(model, x)
        times["plain"].append(sum(split.values()))
        result["plain"] = {**info, **{k: round(v, 1) for k, v in split.items()}, "program_bytes": len(program)}
        outputs["plain"] = _run(program, x)
        t0 = time.perf_counter()
        program, info = _lower(model, x)
        times["ours"].append(time.perf_counter() - t0)
        result["ours"] = {**info, "program_bytes": len(program)}
        outputs["ours"] = _run(program, x)
    for k, v in times.items():
        result[k]["median_s"] = round(statistics.median(v), 1)
        result[k]["all_s"] = [round(t, 1) for t in v]
        result[k]["max_abs_vs_eager"] = float((outputs[k] - eager).abs().max())
    result["max_abs_ours_vs_plain"] = float((outputs["ours"] - outputs["plain"]).abs().max())
    result["largest_output"] = float(eager.abs().max())
    result["ratio_ours_over_plain"] = round(result["ours"]["median_s"] / result["plain"]["median_s"], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
