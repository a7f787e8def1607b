"""`lpm transfer`: the leave-one-device-out benchmark of `lpm adapt` over the device zoo's stores."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from lpm_zoo.cli import Command, int_list
from lpm_zoo.errors import LpmError, clip

SUMMARY = (("all", "random"), ("all", "calibration"), ("best same-runtime", "random"), ("other-runtime", "random"),
           ("best finetune", "random"), ("best lpm adapt", "random"), ("best lpm adapt", "calibration"))
_BEST = {"best same-runtime": ("adapted", "adapted"), "best finetune": ("finetune", "fine-tuned"),
         "best lpm adapt": ("lpm adapt", "lpm adapt")}  # summary row -> (rows' method, label)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", action="append", default=None, metavar="STORE",
                   help="a measurement store or bundled:NAME (repeatable; default: every bundled store)")
    p.add_argument("--target", action="append", default=None, metavar="BACKEND/DEVICE/PROFILE",
                   help="only these targets (repeatable; default: every device; the others are still sources)")
    p.add_argument("--sizes", default="5,10,20,50,100", metavar="N1,N2,...",
                   help="measured cells on the target (default 5,10,20,50,100)")
    p.add_argument("--draws", type=int, default=30, help="random draws of N cells (default 30)")
    p.add_argument("--source-type", default="mlp-plus", metavar="TYPE",
                   help="predictor type fitted on each source device and as the native one (default mlp-plus)")
    p.add_argument("--scratch", default="ridge,lut,mlp-plus", metavar="T1,T2,...",
                   help="types fitted from scratch on the same N cells (default ridge,lut,mlp-plus; '' for none)")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="held-out cells per target (default a fifth, at most 2,000; at least 10)")
    p.add_argument("--min-cells", type=int, default=200, help="smallest device taken from the stores (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and draws (default 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write rows.jsonl (resumed: rows made are kept, only new targets and N are computed), "
                        "table.md and error_vs_n.png here")
    p.add_argument("--json", action="store_true", help="print every row as one JSON object per line")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fmt(r: dict[str, Any], label: str) -> str:
    return (f"| {r['target']} | {label} | {r['cells']} | {r['n']} | {r['mre_pct']:.2f} ± {r['mre_pct_sd']:.2f} | "
            f"{r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | {r['within5_pct']:.1f} | {r['within10_pct']:.1f} | "
            f"{r.get('chosen') or ''} |")


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """A markdown table: per target, the native predictor, then per N the main adapted and scratch rows."""
    out = ["| target | predictor | cells | N | MRE % (± sd over draws) | τ | ρ | ±5% % | ±10% % | method chosen |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for target in dict.fromkeys(r["target"] for r in rows):
        rs = [r for r in rows if r["target"] == target]
        out += [_fmt(r, r["method"]) for r in rs if r["relation"] == "native"]
        for n in sorted({r["n"] for r in rs if r["relation"] != "native"}):
            at = [r for r in rs if r["n"] == n]
            for sources, cells in SUMMARY:
                if sources in _BEST:
                    kind, verb = _BEST[sources]
                    cand = [r for r in at if r["method"] == kind and r["cells"] == cells
                            and (kind != "adapted" or r["relation"] == "same-runtime")]
                    pick = min(cand, key=lambda r: r["mre_pct"]) if cand else None
                    label = f"{verb} from {pick['sources']}" if pick else ""
                else:
                    pick = next((r for r in at if r["sources"] == sources and r["cells"] == cells), None)
                    label = f"adapted from {sources}"
                if pick:
                    out.append(_fmt(pick, label))
            out += [_fmt(r, r["method"]) for r in at if r["relation"] == "scratch"]
    return out


def plot_error_vs_n(rows: list[dict[str, Any]], path: Any) -> None:
    """MRE against N, one panel per target: adapted (all sources, other runtimes), scratch, native as a line."""

    from lpm_zoo.evaluation.plots import pyplot



    plt = pyplot()
    targets = list(dict.fromkeys(r["target"] for r in rows))
    cols = min(3, len(targets))
    nrows = (len(targets) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax, target in zip(axes.flat, targets):
        rs = [r for r in rows if r["target"] == target]
        lines = {"adapted, all sources": [r for r in rs if r["sources"] == "all" and r["cells"] == "random"],
                 "adapted, other runtimes": [r for r in rs if r["sources"] == "other-runtime" and r["cells"] == "random"],
                 "adapted, all, calibration set": [r for r in rs if r["sources"] == "all" and r["cells"] == "calibration"]}
        tuned = [r for r in rs if r["method"] == "finetune"]
        if tuned:
            best = min(dict.fromkeys(r["sources"] for r in tuned),
                       key=lambda src: sum(r["mre_pct"] for r in tuned if r["sources"] == src))
            lines[f"fine-tuned {best}"] = [r for r in tuned if r["sources"] == best]
        for t in dict.fromkeys(r["method"] for r in rs if r["relation"] == "scratch"):
            lines[t] = [r for r in rs if r["method"] == t]
        for label, pts in lines.items():
            if pts:
                ax.plot([r["n"] for r in pts], [r["mre_pct"] for r in pts], marker="o", ms=3, label=label)
        for r in rs:
            if r["relation"] == "native":
                ax.axhline(r["mre_pct"], color="k", ls="--", lw=0.8, label=f"native ({r['n']} cells)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(target, fontsize=9)
        ax.set_xlabel("cells measured on the target (N)", fontsize=8)
        ax.set_ylabel("MRE on held-out cells (%)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(targets):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_ROW_KEYS = {"target": str, "sources": str, "relation": str, "method": str, "cells": str, "n": int,
             "mre_pct": float, "kendall_tau": float, "spearman_rho": float, "within5_pct": float, "within10_pct": float}
MAX_ROWS_BYTES = 64 << 20


def _read_rows(path: Any) -> list[dict[str, Any]]:
    """The rows an earlier run saved; a torn last line (a kill mid-write) is dropped, anything else is refused."""


    if not path.is_file():
        return []
    if path.stat().st_size > MAX_ROWS_BYTES:
        raise LpmError(f"{clip(str(path))} is over {MAX_ROWS_BYTES >> 20} MB: not rows of lpm transfer; use another --out")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines[-1] != ""  # every saved row ends with a newline
    rows = []
    for k, line in enumerate(lines[:-1], start=1):
        try:
            r = json.loads(line)
            ok = isinstance(r, dict) and all(isinstance(r.get(key), (int, float) if t is float else t)
                                             for key, t in _ROW_KEYS.items())
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            raise LpmError(f"{clip(str(path))} line {k} is not a row of lpm transfer; delete the file to start afresh "
                           "or give another --out")
        rows.append(r)
    if torn:  # drop it, so rows appended next start on a line of their own
        path.write_text("".join(line + "\n" for line in lines[:-1]), encoding="utf-8")
    return rows


OUT_FILES = ("rows.jsonl", "table.md", "error_vs_n.png")


def _make_out(out: Any) -> None:
    """Make the --out folder, or say in one line why it cannot be; its files must be regular files or absent."""


    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LpmError(f"cannot create the --out folder {clip(str(out))} ({e.strerror or type(e).__name__}); "
                       "choose another --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise LpmError(f"the --out folder {clip(str(out))} is not writable; choose another --out")
    for name in OUT_FILES:
        f = out / name
        if (f.exists() or f.is_symlink()) and not f.is_file():
            raise LpmError(f"{clip(str(f))} is not a regular file (a folder or a device?); remove it or choose "
                           "another --out")


def _other_settings(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    """The settings (flags) the saved `rows` were made with that differ from this run's (rows of older lpm: none)."""
    flags = {"source_type": "--source-type", "scratch": "--scratch", "draws": "--draws", "test_size": "--test-size",
             "seed": "--seed"}
    differ = {k for r in rows if isinstance(r.get("settings"), dict) for k in flags
              if r["settings"].get(k) != settings[k]}
    return [flags[k] for k in flags if k in differ]


def _run(args: argparse.Namespace) -> int:


    from lpm_zoo.adaptation.transfer import GOAL_CELLS, check_settings, devices_in, goal_check, transfer_benchmark, transferable
    from lpm_zoo.store import BUNDLED_PREFIX, list_bundled

    sizes = check_settings(int_list(args.sizes, "--sizes", 3, 10_000), args.draws, args.test_size, args.seed)
    scratch = [t for t in args.scratch.split(",") if t]
    if not 1 <= args.min_cells <= 1_000_000:
        raise LpmError(f"--min-cells must be from 1 to 1000000, got {args.min_cells}")
    settings = {"source_type": args.source_type, "scratch": scratch, "draws": args.draws, "test_size": args.test_size,
                "seed": args.seed}
    out = Path(args.out) if args.out else None
    done: dict[str, list[dict[str, Any]]] = {}
    if out:
        if out.exists() and not out.is_dir():
            raise LpmError(f"--out {clip(str(out))} is a file; give a folder")
        if out.is_dir():
            for r in _read_rows(out / "rows.jsonl"):
                done.setdefault(r["target"], []).append(r)
        differ = _other_settings([r for rs in done.values() for r in rs], settings)
        if differ:
            raise LpmError(f"{clip(str(out / 'rows.jsonl'))} holds rows made with other {', '.join(differ)}: give "
                           "the same flags (other --sizes and --target are fine: only what is new is computed), "
                           "or another --out")
    dbs = args.db or [BUNDLED_PREFIX + n for n in list_bundled()]
    devices = devices_in(dbs, args.min_cells)
    targets = args.target or transferable(devices)  # by default every device with another of its encoding

    def save(target: str, rows: list[dict[str, Any]]) -> None:
        if out:  # one write per target: a kill leaves at most a torn last line, which the next run drops
            try:
                with open(out / "rows.jsonl", "a", encoding="utf-8") as f:
                    f.write("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
            except OSError as e:
                raise LpmError(f"cannot write {clip(str(out / 'rows.jsonl'))} ({e.strerror or type(e).__name__}); "
                               "the targets finished before are saved: run the same command again") from None

    made = {t: {r["n"] for r in rs if r["relation"] != "native"} for t, rs in done.items()
            if any(r["relation"] == "native" for r in rs)}  # a target's rows are saved with its native row
    new = transfer_benchmark(devices, sizes, args.draws, args.source_type, scratch, targets, args.test_size,
                             args.seed, made, save, progress=not args.no_progress,
                             on_start=(lambda: _make_out(out)) if out else None)
    # this run's --sizes only (other N saved before stay in rows.jsonl)
    rows = [r for t, rs in done.items() if t in targets for r in rs if r["relation"] == "native" or r["n"] in sizes]
    rows += new
    if args.json:
        for r in rows:
            print(json.dumps(r, allow_nan=False))
        return 0
    table = summary_table(rows)
    goals = goal_check(rows)
    lines = table + ["", "| target | native MRE % / τ | same runtime, N=10, random cells: MRE % (× native) / τ gap / "
                         "±10% % | the same on the calibration cells (lpm adapt's default) | "
                         "other runtime, N=20: τ / MRE % |", "|---|---|---|---|---|"]
    for g in goals:
        same, calib = (("-" if g[f"{p}_mre_pct"] is None else
                        f"{g[f'{p}_mre_pct']:.2f} ({g[f'{p}_mre_ratio']:.2f}×) / {g[f'{p}_tau_gap']:+.3f} / "
                        f"{g[f'{p}_within10_pct']:.1f} (from {g[src]})")
                       for p, _, src in GOAL_CELLS)
        cross = "-" if g["cross_tau"] is None else f"{g['cross_tau']:.3f} / {g['cross_mre_pct']:.2f}"
        lines.append(f"| {g['target']} | {g['native_mre_pct']:.2f} / {g['native_tau']:.3f} | {same} | {calib} | {cross} |")
    print("\n".join(lines))
    if out:
        try:
            (out / "table.md").write_text("\n".join(lines) + "\n")
            plot_error_vs_n(rows, out / "error_vs_n.png")
        except OSError as e:
            raise LpmError(f"cannot write the table or the plot in {clip(str(out))} ({e.strerror or type(e).__name__})"
                           f"; every row is saved in {clip(str(out / 'rows.jsonl'))}") from None
        print(f"\nwrote {out / 'rows.jsonl'}, {out / 'table.md'} and {out / 'error_vs_n.png'}")
    return 0


command = Command(help="leave-one-device-out benchmark of lpm adapt: every device as target, the others as sources",
                  configure=_configure, run=_run)
