"""`lpm profile`: time sampled cells on a backend/device into a resumable measurement store."""

from __future__ import annotations

import argparse
import re

from lpm_zoo.backends.commands.options import add_common, log_for, protocol_from_args, require_own_name, store_name
from lpm_zoo.cli import Command
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.ray_cluster import ray_address


def _configure_profile(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--samples", type=int, required=True,
                   help="measure until the store holds this many unique architectures (those present are skipped)")
    p.add_argument("--db", required=True, help="SQLite measurement store (created if missing)")
    p.add_argument("--interleave", type=int, default=8,
                   help="architectures timed in turns as one group, committed together (default 8)")
    p.add_argument("--ray", metavar="ADDRESS", default=None, type=ray_address,
                   help="run on Ray workers, one device each: a cluster address, 'auto', or 'local'")
    p.add_argument("--workers", type=int, default=None,
                   help="with --ray: Ray workers (default one per device); without: this many local profiler "
                        "processes share the store, each with --threads threads (CPU backends)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="measure only every N-th architecture of the plan, from the I-th (what --workers runs)")
    p.add_argument("--cells", choices=["random", "calibration"], default="random",
                   help="random: the seed's sampled cells (default); calibration: the shipped calibration set's first "
                        "--samples cells (what lpm adapt measures; lets lpm transfer compare it with random cells)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_profile(args: argparse.Namespace) -> int:
    from lpm_zoo.backends.profiling import run_profile
    from lpm_zoo.store import MeasurementStore

    shard = _shard(args.shard)
    protocol = protocol_from_args(args, args.interleave)
    require_own_name(args, protocol.backend_options)
    if not args.ray:
        args.device_name = store_name(args)  # a store measured here under another name resumes under it
    if args.workers is not None and not args.ray:
        from lpm_zoo.backends.profiling.workers import run_local_workers

        added = run_local_workers(args, protocol, log_for("profile"))
    else:
        added = run_profile(args.backend, args.device, args.profile, args.samples, args.db, seed=args.seed,
                            protocol=protocol, name=args.device_name, ray_address=args.ray,
                            workers=args.workers, progress=not args.no_progress, log=log_for("profile"),
                            shard=shard, cells=args.cells)
    with MeasurementStore(args.db, readonly=True) as store:
        # Ray workers name their own hardware: without --device-name, every device of the store is shown
        dev = None if args.ray and not args.device_name else args.device_name
        rows = [r for r in store.summary() if r["backend"] == args.backend and r["profile"] == args.profile
                and dev in (None, r["device"])]
    for r in rows:
        print(f"{args.db}: {r['backend']}/{r['device']}/{r['profile']}: {r['n_unique']} unique architectures "
              f"({r['n']} measurements; {added} added now)")
    return 0


def _shard(spec: str | None) -> tuple[int, int] | None:
    """(I, N) from "I/N" with 0 <= I < N <= 256, or None."""


    if spec is None:
        return None
    m = re.fullmatch(r"(\d{1,3})/(\d{1,3})", spec.strip())
    if not m or not int(m.group(1)) < int(m.group(2)) <= 256:
        raise LpmError(f"--shard {clip(spec)}: use I/N with 0 <= I < N <= 256, e.g. 0/2")
    return int(m.group(1)), int(m.group(2))


command = Command(help="time sampled cells on a backend/device into a resumable measurement store",
                          configure=_configure_profile, run=_run_profile)


# --- lpm recheck -------------------------------------------------------------------------
