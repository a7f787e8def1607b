"""A sweep's results without its checkpoints, as one small .tar.gz to commit: grid.json and, of each finished
trial, its state and step files (search.json, info.json, measure-*.json, train*.json, genotype-eN.json) and the
search's genotype.json and history.json. The study's long runs outlive the machine that ran them: unpacked, the
folder is a sweep folder that `lpm sweep --reuse` takes trials from (so a later session resumes the study instead
of training the same networks again; `--anytime` cells too, from the search's history), and that
`lpm sweep --report`, benchmarks/claim_latency.py and benchmarks/evaluation_convergence.py read.

    python -m benchmarks.sweep_archive runs/claim30-r --out benchmarks/results/sweeps/claim30-r.tar.gz
    tar xzf benchmarks/results/sweeps/claim30-r.tar.gz -C /tmp   # /tmp/claim30-r, a sweep folder

Left out: checkpoints (`*.pt`), logs, locks and the trials not finished (nothing to resume them from without a
checkpoint). Packing the same results twice with the same Python writes the same bytes (sorted members, no
owners, every modification time zeroed, the gzip header's too). The folder is read as untrusted input, as
`--reuse` reads it: its grid and every packed trial's state and row are checked by `lpm sweep`'s own readers, a
trial whose state names another trial is refused, no link is followed (a linked `trials/`, trial folder, `search/`
or file is refused), a hard-linked file is refused, and each file and the whole archive are capped."""

from __future__ import annotations

import argparse
import gzip
import io
import os
import stat
import sys
import tarfile
from dataclasses import asdict
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import MAX_JSON_BYTES, open_own, refuse_link, write_atomic
from lpm_zoo.search.sweep.grid import sweep_grid
from lpm_zoo.search.sweep.results import results_row
from lpm_zoo.search.sweep.trial import read_state

#: the step files of a finished trial that its row and `--reuse` read (its own top level), and of its search the
#: found genotype (what `--reuse-searches` checks) and the history (what `--anytime` cells are derived from)
KEEP_SUFFIX = ".json"
KEEP_NESTED = ("search/genotype.json", "search/history.json")
#: the most files and bytes one archive may hold (a sweep of 1,000 trials packs to a few MB)
MAX_FILES = 50_000
MAX_BYTES = 256 << 20


def _read(path: Path) -> bytes:
    """A file to pack: regular, not through a link, one name (a hard-linked file may be anyone's), at most
    MAX_JSON_BYTES; else one LpmError line."""
    with open_own(path, "read") as f:
        st = os.fstat(f.fileno())
        if st.st_nlink > 1:
            raise LpmError(f"{clip(str(path))} is hard-linked ({st.st_nlink} names); a sweep's files have one name")
        if st.st_size > MAX_JSON_BYTES:
            raise LpmError(f"{clip(str(path))} holds {st.st_size} bytes; a sweep writes no file over {MAX_JSON_BYTES}")
        return f.read(MAX_JSON_BYTES + 1)[:MAX_JSON_BYTES]


def _folder(path: Path) -> bool:
    """Whether `path` is a folder (never through a link: a link there is one LpmError line)."""
    return refuse_link(path) and path.is_dir()


def trial_files(folder: Path) -> list[str]:
    """The files of one finished trial folder to pack (relative paths, sorted): its top-level JSON files and the
    search's genotype and history; a link is refused, never followed."""
    names = []
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.name.endswith(KEEP_SUFFIX):
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise LpmError(f"{clip(entry.path)} is a link; a sweep folder is read without following links")
            if stat.S_ISREG(mode):
                names.append(entry.name)
    if _folder(folder / "search"):
        names += [rel for rel in KEEP_NESTED if os.path.lexists(folder / rel)]
    return names


def pack(folder: Path, out: Path) -> tuple[int, int]:
    """Write the archive of the sweep folder `folder` to `out`; returns (trials packed, trials left out)."""
    grid = sweep_grid(folder)
    name = folder.resolve().name or "sweep"
    members: list[tuple[str, bytes]] = [(f"{name}/grid.json", _read(folder / "grid.json"))]
    packed = skipped = 0
    total = len(members[0][1])
    if not _folder(folder / "trials"):
        raise LpmError(f"{clip(str(folder))}: no trials/ folder, so no finished trial to pack")
    for t in grid.trials():
        tdir = folder / "trials" / t.id
        if not _folder(tdir):
            continue
        state = read_state(tdir)
        if state.get("status") != "done":
            skipped += 1
            continue
        if state.get("trial") != asdict(t):  # what --reuse refuses, refused here (not packed to be refused later)
            raise LpmError(f"{clip(str(tdir / 'state.json'))} names another trial than its folder; not packed")
        results_row(t, tdir, grid.settings)  # its own step files, checked and matched to the trial
        for rel in trial_files(tdir):
            members.append((f"{name}/trials/{t.id}/{rel}", _read(tdir / rel)))
            total += len(members[-1][1])
            if len(members) > MAX_FILES or total > MAX_BYTES:
                raise LpmError(f"{clip(str(folder))}: over {MAX_FILES} files or {MAX_BYTES >> 20} MiB to pack; "
                               "that is no sweep's results")
        packed += 1
    if not packed:
        raise LpmError(f"{clip(str(folder))}: no finished trial to pack")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(members):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    write_atomic(out, buf.getvalue())
    return packed, skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sweep_archive", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the sweep folder (lpm sweep --out)")
    p.add_argument("--out", type=Path, required=True, help="the .tar.gz to write")
    args = p.parse_args(argv)
    try:
        if args.out.is_dir() or not args.out.parent.is_dir():
            raise LpmError(f"--out {clip(str(args.out))}: name a file in a folder that exists")
        packed, skipped = pack(args.folder, args.out)
    except LpmError as e:
        print(f"sweep_archive: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file gone or unreadable while packing: nothing was written
        print(f"sweep_archive: error: {clip(str(e.filename or args.folder))}: {e.strerror or type(e).__name__}",
              file=sys.stderr)
        return 2
    print(f"{args.out}: {packed} finished trials ({args.out.stat().st_size} bytes); {skipped} unfinished left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
