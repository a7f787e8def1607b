"""A sweep's results without its checkpoints, as one small .tar.gz to commit: grid.json and, of each finished
trial, its state and step files (search.json, info.json, measure-*.json, train*.json, genotype-eN.json,
search/genotype.json). The study's long runs outlive the machine that ran them: unpacked, the folder is a sweep
folder that `lpm sweep --reuse` takes trials from (so a later session resumes the study instead of training the
same networks again), and that `lpm sweep --report`, benchmarks/claim_latency.py and
benchmarks/evaluation_convergence.py read.

    python -m benchmarks.sweep_archive runs/claim30-r --out benchmarks/results/sweeps/claim30-r.tar.gz
    tar xzf benchmarks/results/sweeps/claim30-r.tar.gz -C /tmp   # /tmp/claim30-r, a sweep folder

Left out: checkpoints (`*.pt`, the search's and training's folders but the found genotype), logs, locks and the
trials not finished (nothing to resume them from without a checkpoint). The archive is deterministic (sorted
members, no owners, the files' own modification times zeroed), so packing the same results twice writes the same
bytes and a commit shows only what changed. The folder is read as untrusted input: its grid and every packed
trial's row are checked by `lpm sweep`'s own readers first, and a link is never followed."""

from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import tarfile
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import MAX_JSON_BYTES, read_regular, write_atomic
from lpm_zoo.search.sweep.grid import sweep_grid
from lpm_zoo.search.sweep.results import results_row
from lpm_zoo.search.sweep.trial import STATE, read_state

#: the step files of a finished trial that its row and `--reuse` read (its own top level), and the found genotype
KEEP_SUFFIX = ".json"
KEEP_NESTED = ("search/genotype.json",)


def _read(path: Path) -> bytes:
    """A file to pack, at most MAX_JSON_BYTES (a larger one is one LpmError line: a sweep writes none)."""
    data = read_regular(path, MAX_JSON_BYTES)
    if len(data) > MAX_JSON_BYTES:
        raise LpmError(f"{clip(str(path))} holds over {MAX_JSON_BYTES} bytes; a sweep writes no such file")
    return data


def trial_files(folder: Path) -> list[str]:
    """The files of one finished trial folder to pack (relative paths, sorted): its top-level JSON files and the
    search's genotype; no link is followed."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(KEEP_SUFFIX) and (folder / n).is_file()
                   and not (folder / n).is_symlink())
    nested = [rel for rel in KEEP_NESTED if (folder / rel).is_file() and not (folder / rel).is_symlink()]
    return names + nested


def pack(folder: Path, out: Path) -> tuple[int, int]:
    """Write the archive of the sweep folder `folder` to `out`; returns (trials packed, trials left out)."""
    grid = sweep_grid(folder)
    name = folder.resolve().name
    members: list[tuple[str, bytes]] = [(f"{name}/grid.json", _read(folder / "grid.json"))]
    packed = skipped = 0
    for t in grid.trials():
        tdir = folder / "trials" / t.id
        if tdir.is_symlink() or not tdir.is_dir() or read_state(tdir).get("status") != "done":
            skipped += tdir.is_dir()
            continue
        results_row(t, tdir, grid.settings)  # its own step files, checked and matched to the trial
        for rel in trial_files(tdir):
            members.append((f"{name}/trials/{t.id}/{rel}", _read(tdir / rel)))
        packed += 1
    if not any(m[0].endswith("/" + STATE) for m in members):
        raise LpmError(f"{clip(str(folder))}: no finished trial to pack")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                           format=tarfile.PAX_FORMAT) as tar:
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
        packed, skipped = pack(args.folder, args.out)
    except LpmError as e:
        print(f"sweep_archive: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {packed} finished trials ({args.out.stat().st_size} bytes); {skipped} unfinished left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
