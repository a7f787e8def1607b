"""`lpm sweep --reuse DIR`: take the finished trials another sweep already ran, when they are the same trials with
the same settings (Table 3's noise-free points are Table 4's latency-aware ones; a reference genotype needs only the
same training and measurement), instead of running them again."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from search.sweep.grid import Grid
from search.sweep.trial import LOCK, flocked, read_state

#: the most bytes one reused trial folder may hold (its search checkpoint included), checked before copying
MAX_TRIAL_BYTES = 2 << 30


def _settings_of(source: Path) -> dict:
    try:
        data = json.loads((source / "grid.json").read_text())
        grid = Grid.from_json(data, str(source / "grid.json"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise LpmError(f"--reuse {clip(str(source))}: not a sweep folder (grid.json: {type(e).__name__})") from None
    return grid.settings


def _files(folder: Path) -> list[Path]:
    """The trial folder's regular files, links neither copied nor followed (the lock left out), its size checked."""
    files, total = [], 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            path = Path(root) / name
            if name == LOCK or path.is_symlink() or not path.is_file():
                continue
            total += path.stat().st_size
            if total > MAX_TRIAL_BYTES:
                raise LpmError(f"--reuse: {clip(str(folder))} holds over {MAX_TRIAL_BYTES >> 30} GiB; not copied")
            files.append(path)
    return files


def _reusable(reference: bool, theirs: dict, ours: dict) -> bool:
    """A reference trial (no search) needs the same training and measurement; a search trial every setting."""
    keys = ("train", "measure") if reference else sorted(set(theirs) | set(ours))
    return all(theirs.get(k) == ours.get(k) for k in keys)


def check_sources(out: Path, grid: Grid, sources: list[str]) -> dict[str, dict]:
    """Each source must be another sweep folder with this sweep's training and measurement settings (else one
    LpmError line); returns each source's settings. Writes nothing."""
    found = {}
    for src in sources:
        source = Path(src)
        if source.resolve() == out.resolve():
            raise LpmError(f"--reuse {clip(src)} is --out itself")
        found[src] = _settings_of(source)
        if not _reusable(True, found[src], grid.settings):
            raise LpmError(f"--reuse {clip(src)}: that sweep trained or measured with other settings; only trials "
                           "of the same settings can be reused")
    return found


def reuse_trials(out: Path, grid: Grid, sources: list[str]) -> list[str]:
    """Copy into `out` each trial of `grid` that is not in `out` yet and is done in one of `sources` with the same
    settings (a reference: the same training and measurement; a search trial: every setting). Returns the ids copied."""
    settings = check_sources(out, grid, sources)
    copied: list[str] = []
    for src in sources:
        source = Path(src)
        for t in grid.trials():
            src_trial, dest = source / "trials" / t.id, out / "trials" / t.id
            state = read_state(src_trial)
            if (state.get("status") != "done" or state.get("trial") != asdict(t) or t.id in copied
                    or not _reusable(t.reference is not None, settings[src], grid.settings)):
                continue
            with flocked(out / ".trials.mutex"):  # among the sweeps of `out`, as their trial locks are
                if dest.exists():
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".reuse-{t.id[:40]}-", dir=dest.parent))
                try:
                    for f in _files(src_trial):
                        target = tmp / f.relative_to(src_trial)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(f, target)
                    os.rename(tmp, dest)
                except OSError as e:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise LpmError(f"--reuse: cannot copy {clip(t.id, 80)} ({e.strerror or type(e).__name__}); "
                                   "nothing of it was kept, the sweep runs it instead if you drop --reuse") from None
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            copied.append(t.id)
    return copied
