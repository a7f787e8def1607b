"""Every check of a sweep before anything is created or run: each setting a step will get, checked by the
step's own command (`Command.check` of `lpm search`, `train`, `measure`: the same validators, no copies), and the
sweep folder as it is (no link where lpm keeps its own files, every state.json and every finished trial's step
files valid), so a refused command leaves the disk as it was and a corrected rerun works."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from lpm_zoo.cli import build_parser, discover_commands
from lpm_zoo.device import canonical_device
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import refuse_link
from lpm_zoo.search.sweep.grid import Grid, Trial
from lpm_zoo.search.sweep.results import results_row
from lpm_zoo.search.sweep.trial import produced_genotype, read_state, trial_steps

#: the files lpm keeps at the top of a sweep folder (each refused when it is a link)
TOP_FILES = ("grid.json", ".trials.mutex", ".results.mutex", "results.csv", "results.parquet", "report.md",
             "claim.json", "claim.png")
#: what stands for a searched genotype when the steps after the search are checked (the search has not run yet)
SOME_GENOTYPE = "DARTS_V2"


def _representatives(grid: Grid) -> list[Trial]:
    """One trial per (dataset, method) and per (dataset, kind of trial): together they give every step every setting
    and every axis value that changes a step's checks (the axes themselves are checked as the grid is built)."""
    seen: dict[tuple, Trial] = {}
    for t in grid.trials():
        seen.setdefault((t.dataset, t.method, t.kind, t.lam == "0"), t)
    return list(seen.values())


def _on_ray_device(argv: list[str]) -> list[str]:
    """`argv` with its --device set to cpu: on Ray the device is a worker's, not this machine's (its spelling is
    still checked here)."""
    out = list(argv)
    for i, a in enumerate(argv[:-1]):
        if a == "--device":
            try:
                canonical_device(argv[i + 1])
            except LpmError:
                raise LpmError(f"--device {clip(argv[i + 1], 40)} is not a device; use cpu, cuda or cuda:N") from None
            out[i + 1] = "cpu"
    return out


def check_steps(grid: Grid, on_ray: bool = False) -> None:
    """Parse every kind of step this grid runs with the step command's own parser and check it with the command's
    own `check` (what its run checks first): a bad --statistic, --rounds, --train-epochs, --device ... is one
    LpmError line before the sweep creates anything. On Ray (`on_ray`) the devices are the workers': --device is
    checked for its spelling only, and a measurement (whose backend may exist only on the measuring node) is
    parsed but not checked here."""
    commands = discover_commands()
    parser = build_parser(commands)
    checked: set[tuple[str, ...]] = set()
    for t in _representatives(grid):
        for step in trial_steps(t, grid.settings):
            argv = [SOME_GENOTYPE if produced_genotype(a) else a for a in step.argv]
            if on_ray:
                argv = _on_ray_device(argv)
            if tuple(argv) in checked or commands.get(argv[0]) is None or commands[argv[0]].check is None:
                continue
            checked.add(tuple(argv))
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    args = parser.parse_args(argv)
            except SystemExit:
                why = err.getvalue().strip().splitlines()[-1:] or ["its arguments are refused"]
                raise LpmError(f"the {step.name} step would fail: {clip(why[0], 200)}") from None
            if on_ray and step.kind == "measure":
                continue  # parsed only: the backend and device are the measuring node's, checked there
            try:
                commands[argv[0]].check(args)
            except LpmError as e:
                raise LpmError(f"{_flag_hint(step.kind)}{e}") from None


def _flag_hint(kind: str) -> str:
    return {"train": "lpm train (give it as --train-X): ", "measure": "lpm measure: ", "search": "lpm search: "}.get(
        kind, "")


def check_folder(out: Path, grid: Grid) -> None:
    """The sweep folder as it is, before anything is written: no link where lpm keeps its files or folders (at the
    top, trials/, any trial folder or anything in it), every trial's state.json valid, and every finished trial's
    row computable from its own step files. Reads only."""
    if not out.is_dir():
        return
    for name in TOP_FILES:
        refuse_link(out / name)
    for png in [*out.glob("pareto-*.png"), *out.glob("budget-*.png")]:
        refuse_link(png)
    if not refuse_link(out / "trials"):
        return
    for t in grid.trials():
        folder = out / "trials" / t.id
        if not refuse_link(folder):
            continue
        for root, dirs, names in os.walk(folder, followlinks=False):
            for name in dirs + names:
                refuse_link(os.path.join(root, name))  # a file gone since the listing (another sweep's temporary
                # file, renamed) is no link: refuse_link passes it
        if read_state(folder).get("status") == "done":
            results_row(t, folder, grid.settings)
