"""`lpm data info` and `lpm data export`: what a measurement store holds, and the store as Parquet or CSV."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lpm_zoo.cli import Command
from lpm_zoo.errors import LpmError, clip


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="measurements, unique architectures and repeatability (mean relative "
                                       "difference of two measurements) per backend/device/profile")
    info.add_argument("--db", required=True, help="the SQLite measurement store, or bundled:NAME for a shipped one")
    info.add_argument("--json", action="store_true", help="one JSON object per backend/device/profile")
    exp = sub.add_parser("export", help="write every measurement to a .parquet or .csv file")
    exp.add_argument("--db", required=True, help="the SQLite measurement store, or bundled:NAME for a shipped one")
    exp.add_argument("--out", required=True, help="output file: FILE.parquet or FILE.csv")
    rs = sub.add_parser("restat", help="re-express every stored latency with another statistic, from the raw runs "
                                       "(`lpm recheck` names the most repeatable one); the previous value is kept")
    rs.add_argument("--db", required=True, help="the SQLite measurement store to change (not a bundled one)")
    rs.add_argument("--statistic", required=True, help="the statistic to keep (see `lpm profile --help`)")
    rs.add_argument("--backend", default=None, help="only this backend (default: every group in the store)")
    rs.add_argument("--device-name", default=None, help="only this device name")
    rs.add_argument("--profile", default=None, help="only this profile")


def _run(args: argparse.Namespace) -> int:


    from lpm_zoo.store import MeasurementStore, json_safe, resolve_db, skipped_note
    from lpm_zoo.store.export import export_store

    if args.data_command == "restat":
        return _restat(args)
    args.db = str(resolve_db(args.db))  # `bundled:NAME` is a store shipped in the package
    if not Path(args.db).is_file():
        raise LpmError(f"no measurement database at {args.db}; make one with `lpm profile ... --db {args.db}`")
    prog = f"lpm data {args.data_command}"
    if args.data_command == "export":
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
    for r in rows:
        if r["stated"]:
            print(f"note: {r['stated']} of the {r['n']} {r['backend']}/{r['device']}/{r['profile']} measurements were "
                  "taken under a stated host identity (LPM_HOST_IDENTITY, for tests only): not the named machine's; "
                  "lpm fit and lpm adapt refuse them")
    return 0


def _restat(args: argparse.Namespace) -> int:


    from lpm_zoo.statistics import check_statistic
    from lpm_zoo.store import BUNDLED_PREFIX, MeasurementStore, Target, resolve_db

    check_statistic(args.statistic)
    if args.db.startswith(BUNDLED_PREFIX):
        raise LpmError(f"{clip(args.db)} is package data and is never changed; copy it first (cp "
                       f"{resolve_db(args.db)} my.db) and restat the copy")
    if not Path(args.db).is_file():
        raise LpmError(f"no measurement database at {clip(args.db)}")
    with MeasurementStore(args.db, readonly=True) as store:  # check first: the file is only opened to write if needed
        groups = [(r["backend"], r["device"], r["profile"]) for r in store.summary()
                  if (args.backend or r["backend"]) == r["backend"] and (args.device_name or r["device"]) == r["device"]
                  and (args.profile or r["profile"]) == r["profile"]]
    if not groups:
        raise LpmError(f"{clip(args.db)} holds no measurements of that backend/device/profile")
    with MeasurementStore(args.db) as store:
        for b, d, p in groups:
            n = store.restat(args.statistic, Target(b, d, p))
            print(f"{args.db}: {b}/{d}/{p}: {n} latencies re-expressed as {args.statistic} (previous values kept "
                  "in each row's protocol.restat)")
    return 0


command = Command(help="inspect, export or re-summarise a measurement store (info, export, restat)",
                  configure=_configure, run=_run)
