"""`lpm data info` and `lpm data export`: what a measurement store holds, and the store as Parquet or CSV."""

from __future__ import annotations

import argparse

from lpm_zoo.cli import Command


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="measurements, unique architectures and repeatability (mean relative "
                                       "difference of two measurements) per backend/device/profile")
    info.add_argument("--db", required=True, help="the SQLite measurement store, or bundled:NAME for a shipped one")
    info.add_argument("--json", action="store_true", help="one JSON object per backend/device/profile")
    exp = sub.add_parser("export", help="write every measurement to a .parquet or .csv file")
    exp.add_argument("--db", required=True, help="the SQLite measurement store, or bundled:NAME for a shipped one")
    exp.add_argument("--out", required=True, help="output file: FILE.parquet or FILE.csv")


def _run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from lpm_zoo.errors import LpmError
    from lpm_zoo.store import MeasurementStore, json_safe, resolve_db, skipped_note

    args.db = str(resolve_db(args.db))  # `bundled:NAME` is a store shipped in the package
    if not Path(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}; make one with `lpm profile ... --db {args.db}`")
    prog = f"lpm data {args.data_command}"
    if args.data_command == "export":
        from lpm_zoo.store_export import export_store

        n, skipped = export_store(args.db, args.out)
        if skipped:
            print(f"{prog}: warning: {skipped_note(skipped)}", file=sys.stderr)
        print(f"wrote {n} measurements to {args.out}")
        return 0
    with MeasurementStore(args.db, readonly=True) as store:  # reading never changes the file
        rows = store.summary(repeatability=True)
        skipped = store.skipped
    if skipped:
        print(f"{prog}: warning: {skipped_note(skipped)}", file=sys.stderr)
    if args.json:
        for r in rows:
            print(json.dumps(json_safe(r), allow_nan=False))
        return 0
    if not rows:
        print(f"{args.db}: no measurements")
        return 0
    print(f"{'backend':<8} {'device':<10} {'profile':<13} {'measurements':>12} {'unique':>7} {'mean ms':>9} "
          f"{'repeatability':>22}")
    for r in rows:
        rep = r["repeatability"]
        rep_text = f"{rep['mean_pct']:.2f}% ({rep['n']} twice)" if rep else "- (lpm recheck)"
        print(f"{r['backend']:<8} {r['device']:<10} {r['profile']:<13} {r['n']:>12} {r['n_unique']:>7} "
              f"{r['mean_latency_ms']:>9.3f} {rep_text:>22}")
    return 0


command = Command(help="inspect or export a measurement store (info, export)", configure=_configure, run=_run)
