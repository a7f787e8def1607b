"""`lpm profile --workers N` on one machine: N profiler processes share one store, with one progress bar.

The parent settles the store's statistic first (the pilot runs once), then starts N children,
`lpm profile ... --shard i/N`, each measuring every N-th architecture of the same seeded plan with
its own threads, and shows their combined progress from the store (the children commit each
group). Ctrl-C is passed to every child, which finishes its group, commits it and stops; the same
command resumes. On a 2-core machine, 2 single-threaded workers double the throughput of one
(BENCHMARKS.md); timing with the thread clock keeps their noise apart.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from lpm_zoo.backends.device import parse_device, store_device_name
from lpm_zoo.backends.profiling.pilot import choose_statistic
from lpm_zoo.backends.profiling.run import plan
from lpm_zoo.backends.protocol import protocol_flags
from lpm_zoo.backends.registry import get_backend
from lpm_zoo.errors import LpmError
from lpm_zoo.profiles import get_profile
from lpm_zoo.store import MeasurementStore, Target


def _child_argv(args: argparse.Namespace, protocol, i: int, n: int) -> list[str]:
    """The `lpm profile` command line of worker i of n, with the store's statistic settled."""
    argv = [sys.executable, "-m", "lpm_zoo", "profile", "--backend", args.backend, "--device", args.device,
            "--profile", args.profile, "--samples", str(args.samples), "--db", str(args.db), "--seed", str(args.seed),
            *protocol_flags(protocol), "--shard", f"{i}/{n}", "--no-progress"]
    if args.device_name:
        argv += ["--device-name", args.device_name]
    return argv


def run_local_workers(args: argparse.Namespace, protocol, log: Callable[[str], None]) -> int:
    """Fill `args.db` with `args.workers` local profiler processes; returns how many architectures were added."""

    n = args.workers
    cores = os.cpu_count() or 1
    if not 1 <= n <= 256 or n * args.threads > cores:
        raise LpmError(f"--workers {n} x --threads {args.threads} must be from 1 to the {cores} logical cores here")
    if args.cells != "random":
        raise LpmError("--workers shares random cells between processes; measure --cells calibration (at most "
                       "100 cells) with one process")
    if parse_device(args.device)[0] != "cpu":
        raise LpmError("local --workers is for CPU backends; on GPUs use one process per device (or --ray)")
    get_backend(args.backend).check(args.device)
    get_profile(args.profile)
    with MeasurementStore(args.db) as store:
        dev = args.device_name = store_device_name(store, args.backend, args.device, args.profile, args.device_name)
        todo = plan(store, args.backend, dev, args.profile, args.samples, args.seed)
        before = store.count(Target(args.backend, dev, args.profile))
        if todo:
            protocol = choose_statistic(store, args.backend, args.device, args.profile, protocol, args.device_name,
                                        args.seed, todo, args.db, log)
    if not todo:
        log(f"{args.db} already holds {before} unique architectures for {args.backend}/{dev}/{args.profile}")
        return 0
    children = [subprocess.Popen(_child_argv(args, protocol, i, n), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True) for i in range(n)]
    bar = tqdm(total=args.samples, initial=before, desc=f"{args.backend}/{dev}/{args.profile} x{n}", unit="arch",
               disable=args.no_progress, dynamic_ncols=True)
    try:
        while any(c.poll() is None for c in children):
            time.sleep(2.0)
            with MeasurementStore(args.db, readonly=True) as store:
                bar.update(store.count(Target(args.backend, dev, args.profile)) - bar.n)
    except KeyboardInterrupt:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGINT)  # each finishes and commits its group
        for c in children:
            c.wait()
        bar.close()
        raise
    bar.close()
    failed = [(i, c) for i, c in enumerate(children) if c.returncode != 0]
    if failed:
        i, c = failed[0]
        last = (c.stderr.read() if c.stderr else "").strip().splitlines()
        raise LpmError(f"profiler worker {i} of {n} stopped (exit {c.returncode}: {last[-1][:200] if last else '?'});"
                       " what the workers committed is kept: run the same command again to resume")
    with MeasurementStore(args.db, readonly=True) as store:
        return store.count(Target(args.backend, dev, args.profile)) - before
