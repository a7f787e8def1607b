"""The search network's step time against the original DARTS / PC-DARTS code, side by side in one process.

    python -m benchmarks.search_vs_original --darts-dir ~/src/darts --pcdarts-dir ~/src/PC-DARTS

`--darts-dir` is a checkout of github.com/quark0/darts (its `cnn/` folder is used), `--pcdarts-dir` one of
github.com/yuhuixu1993/PC-DARTS; the project carries neither. Their `.cuda()` calls are made no-ops
while the networks are built, so they run on the CPU. Each round times, in turn, one step of every
network (weights: forward, cross-entropy, backward, gradient clipping, SGD; α: first-order, DARTS'
`_backward_step` for the original, `Architect.step` for the project), and the medians of the rounds
are printed with the ratio project / original. The networks start from the same weights and α.
`--peak-memory` instead runs each network alone in a fresh process (two weight steps and two α
steps) and prints each one's peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ORIGINAL_MODULES = ("model_search", "operations", "genotypes", "utils")
#: the project's networks that can be timed: the forward (default, per-edge, per-state), optionally under bf16
VARIANTS = [f"{v}{p}" for v in ("ours", "plain", "fused") for p in ("", "-bf16")]


@contextlib.contextmanager
def _cuda_is_cpu():
    """`.cuda()` on tensors and modules returns them unchanged while the original code builds its network."""
    import torch

    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved


def load_original(folder: Path, label: str):
    """The `model_search` module of a checkout folder, imported under its own name and then unlisted, so
    DARTS' and PC-DARTS' same-named modules do not mix."""
    if not (folder / "model_search.py").is_file():
        raise SystemExit(f"{label}: no model_search.py in {folder}; pass the checkout's folder that has it")
    for name in ORIGINAL_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module("model_search")
    finally:
        sys.path.remove(str(folder))
        for name in ORIGINAL_MODULES:
            sys.modules.pop(name, None)
    return module


def _copy_into_original(ours, theirs) -> None:
    """Give the original network our weights, buffers and α (β) so both compute the same function."""
    import torch

    with torch.no_grad():
        mine = ours.state_dict()
        for name, t in theirs.state_dict().items():
            t.copy_(mine[name])
        for a, b in zip(theirs.arch_parameters(), ours.arch_parameters()):
            a.copy_(b)


class Runner:
    """One network with its weight optimiser and a first-order α step; with `precision` (the project's
    `lpm search --precision` path) the weight step runs under its autocast and loss scaling."""

    def __init__(self, model, weights, arch, loss_fn, alpha_step, grad_clip: float = 5.0, precision=None):
        import torch

        self.model, self.weights, self.loss_fn = model, weights, loss_fn
        self.w_opt = torch.optim.SGD(weights, 0.025, momentum=0.9, weight_decay=3e-4)
        self.a_opt = torch.optim.Adam(arch, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        self.alpha_step, self.grad_clip, self.precision = alpha_step, grad_clip, precision

    def w_step(self, x, y) -> float:
        import torch

        self.w_opt.zero_grad(set_to_none=True)
        if self.precision is not None:
            with self.precision.autocast():
                loss = self.loss_fn(x, y)
            self.precision.weight_step(loss, self.w_opt, self.weights, self.grad_clip)
            return float(loss.detach())
        loss = self.loss_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.w_opt.step()
        return float(loss.detach())

    def a_step(self, x, y) -> None:
        self.alpha_step(self, x, y)


def _original_alpha_step(r: Runner, x, y) -> None:
    """DARTS' first-order `Architect._backward_step` (PC-DARTS' is the same)."""
    r.a_opt.zero_grad()
    r.loss_fn(x, y).backward()
    r.a_opt.step()


def build(method: str, args, original) -> dict[str, Runner]:
    """Our networks (the default, and the plain and fused forwards) and the original one, same weights and α."""
    import copy

    import torch
    import torch.nn.functional as F

    from lpm_zoo.search.architect import Architect
    from lpm_zoo.search.model_search import SearchNetwork
    from lpm_zoo.search.precision import Precision

    k = 4 if method == "pcdarts" else 1
    torch.manual_seed(args.seed)
    ours = SearchNetwork(args.channels, 10, args.layers, partial_k=k, edge_norm=k > 1)
    with _cuda_is_cpu():
        theirs = original.Network(args.channels, 10, args.layers, torch.nn.CrossEntropyLoss())
    _copy_into_original(ours, theirs)
    runners = {}
    for name in args.variants:
        forward, _, dtype = name.partition("-")
        model = copy.deepcopy(ours) if name != "ours" else ours
        if forward != "ours":
            model.set_fused(forward == "fused")
        precision = Precision(dtype, torch.device("cpu")) if dtype else None
        model.train()
        r = Runner(model, model.weight_parameters(), model.arch_parameters(),
                   lambda x, y, m=model: F.cross_entropy(m(x), y), None, precision=precision)
        arch = Architect(model, 3e-4, (0.5, 0.999), 1e-3, 0.9, 3e-4, unrolled=False, precision=precision)
        r.alpha_step = lambda r, x, y, arch=arch: arch.step(x, y, x, y, 0.025, r.w_opt)
        runners[name] = r
    theirs.train()
    runners["original"] = Runner(theirs, list(theirs.parameters()), theirs.arch_parameters(),
                                 lambda x, y, m=theirs: m._loss(x, y), _original_alpha_step)
    return runners


def measure(method: str, args, original) -> dict:
    """Interleaved rounds of one weight step and one α step per network; medians and ratios."""
    import torch

    runners = build(method, args, original)
    if args.single:
        runners = {args.single: runners[args.single]}
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution, generator=gen)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen)
    times = {(n, kind): [] for n in runners for kind in ("w", "alpha")}
    for rnd in range(args.rounds + args.warmup):
        for name, r in runners.items():
            for kind, fn in (("w", r.w_step), ("alpha", r.a_step)):
                t0 = time.perf_counter()
                fn(x, y)
                if rnd >= args.warmup:
                    times[(name, kind)].append(time.perf_counter() - t0)
    med = {f"{n}_{kind}_ms": round(1e3 * statistics.median(v), 1) for (n, kind), v in times.items()}
    out = {"method": method, **med}
    for n in runners:
        if n != "original" and "original" in runners:
            for kind in ("w", "alpha"):
                out[f"ratio_{n}_{kind}"] = round(med[f"{n}_{kind}_ms"] / med[f"original_{kind}_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(prog="python -m benchmarks.search_vs_original", description=__doc__.splitlines()[0])
    ap.add_argument("--darts-dir", type=Path, help="checkout of quark0/darts (the folder holding cnn/)")
    ap.add_argument("--pcdarts-dir", type=Path, help="checkout of yuhuixu1993/PC-DARTS")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["ours"], choices=VARIANTS,
                    help="the project's networks to time against the original: ours (the default network), "
                         "plain (the per-edge loop), fused (the per-state forward, opt-in); -bf16: the same under "
                         "`lpm search --precision bf16` (autocast; fast only on a CPU with native bf16)")
    ap.add_argument("--peak-memory", action="store_true",
                    help="peak resident memory of each network alone, each in a fresh process")
    ap.add_argument("--single", choices=[*VARIANTS, "original"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peak_memory:
        return _peak_memory(args, argv if argv is not None else sys.argv[1:])
    if not (args.darts_dir or args.pcdarts_dir):
        ap.error("pass --darts-dir and/or --pcdarts-dir (checkouts of the original code)")
    torch.set_num_threads(args.threads)
    todo = []
    if args.darts_dir:
        cnn = args.darts_dir / "cnn"
        todo.append(("darts", cnn if cnn.is_dir() else args.darts_dir))
    if args.pcdarts_dir:
        todo.append(("pcdarts", args.pcdarts_dir))
    for method, folder in todo:
        original = load_original(folder.expanduser(), f"--{method.replace('pcdarts', 'pcdarts')}-dir")
        row = measure(method, args, original)
        if args.single:
            row["alone"] = args.single
        row.update(network=f"C={args.channels} layers={args.layers} batch={args.batch_size} "
                           f"{args.resolution}x{args.resolution}", threads=torch.get_num_threads(),
                   rounds=args.rounds, peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        print(json.dumps(row), flush=True)
    return 0


def _peak_memory(args, argv: list[str]) -> int:
    """Each network alone in a child process (same flags, `--single NAME`); prints each one's ru_maxrss."""
    rest = [a for a in argv if a != "--peak-memory"]
    for name in ("original", *args.variants):
        cmd = [sys.executable, "-m", "benchmarks.search_vs_original", *rest, "--single", name,
               "--rounds", "2", "--warmup", "0"]
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
