"""`lpm sweep --reuse DIR`: take the finished trials another sweep already ran, when they are the same trials with
the same settings (Table 3's noise-free points are Table 4's latency-aware ones; a reference genotype needs only the
same training and measurement), instead of running them again.

The source is untrusted input: its grid.json is checked as strictly as this sweep's own; a trial is taken only when
its state says done for this very trial and its row, recomputed from its own step files, passes every check and
matches the trial's coordinates; a link (a linked `trials/`, trial folder or file) is never followed, a hard-linked
file is refused, files and their total are capped, and all of it is checked before the first file is copied.

`lpm sweep --reuse-searches DIR` takes less: the search step only (`search/`, `search.json`, its log and time) of
each search trial that DIR finished with the same search settings, whatever DIR's training and measurement were; the
trial's measurements and training then run with this sweep's settings (the same found cells under a new evaluation
protocol, without searching again). The source is checked the same way."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import new_temp, open_own, own_dir
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2
from lpm_zoo.search.sweep.checks import read_checked
from lpm_zoo.search.sweep.grid import Grid, Trial, read_grid
from lpm_zoo.search.sweep.results import results_row
from lpm_zoo.search.sweep.trial import LOCK, flocked, read_state, write_state

#: the most bytes all reused trial folders together may hold (search checkpoints included), checked before copying
MAX_REUSE_BYTES = 2 << 30
#: the most bytes of one reused file (a sparse file counts with its apparent size)
MAX_FILE_BYTES = 512 << 20


@dataclass(frozen=True)
class Copy:
    """One trial to copy: from where, its files (relative path, size)."""

    trial: Trial
    source: Path
    files: list[tuple[str, int]]
    state: dict | None = None  # written as the copy's state.json (a search taken alone: its step's time)


#: the files of a trial's search step, as `trial_steps` names them
SEARCH_FILES = ("search.json", "search.log")
SEARCH_DIR = "search/"


def _settings_of(source: Path, flag: str = "--reuse") -> dict:
    if not source.is_dir():
        raise LpmError(f"{flag} {clip(str(source))}: not a sweep folder (no folder there)")
    grid = read_grid(source)
    if grid is None:
        raise LpmError(f"{flag} {clip(str(source))}: not a sweep folder (no grid.json)")
    return grid.settings


def _files(folder: Path) -> list[tuple[str, int]]:
    """The trial folder's regular files with their sizes; links neither copied nor followed (the lock left out);
    a hard-linked file (it may be anyone's) or one over MAX_FILE_BYTES is one LpmError line."""
    files = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            path = Path(root) / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # gone since the listing (a sweep running on the source renamed its temporary file)
            if name == LOCK or stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                raise LpmError(f"--reuse: {clip(str(path))} is hard-linked ({st.st_nlink} names); a sweep's files "
                               "have one name: not copied")
            if st.st_size > MAX_FILE_BYTES:
                raise LpmError(f"--reuse: {clip(str(path))} holds {st.st_size} bytes, over {MAX_FILE_BYTES >> 20} "
                               "MiB; not copied")
            files.append((str(path.relative_to(folder)), st.st_size))
    return files


def _reusable(reference: bool, theirs: dict, ours: dict) -> bool:
    """A reference trial (no search) needs the same training and measurement; a search trial every setting but
    --anytime's epochs (the anytime steps a source did not run, this sweep runs)."""
    keys = ("train", "measure") if reference else sorted((set(theirs) | set(ours)) - {"anytime"})
    return all(theirs.get(k) == ours.get(k) for k in keys)


def _source_settings(out: Path, src: str, flag: str) -> dict:
    """The settings of the sweep folder `src` named by `flag`, which must not be `out` itself (else one line)."""
    if Path(src).resolve() == out.resolve():
        raise LpmError(f"{flag} {clip(src)} is --out itself")
    return _settings_of(Path(src), flag)


def check_sources(out: Path, grid: Grid, sources: list[str]) -> dict[str, dict]:
    """Each source must be another sweep folder with this sweep's training and measurement settings (else one
    LpmError line); returns each source's settings. Writes nothing."""
    found = {}
    for src in sources:
        found[src] = _source_settings(out, src, "--reuse")
        if not _reusable(True, found[src], grid.settings):
            raise LpmError(f"--reuse {clip(src)}: that sweep trained or measured with other settings; only trials "
                           "of the same settings can be reused")
    return found


def _finished(out: Path, grid: Grid, src: str, flag: str, skip: Callable[[Trial], bool],
              take: Callable[[Trial], bool], log=None) -> Iterator[tuple[Trial, Path, dict]]:
    """Each trial of `grid` not skipped, not in `out` yet, that `take` accepts and the sweep folder `src` finished:
    the trial, its folder in `src` and its checked state. A link is never followed (a linked trial is logged and
    passed over); a state that names another trial than its folder is one LpmError line."""
    trials = Path(src) / "trials"
    if os.path.islink(trials):
        raise LpmError(f"{flag} {clip(src)}: its trials/ is a link; lpm never follows a link out of a sweep folder")
    for t in grid.trials():
        src_trial = trials / t.id
        if skip(t) or os.path.lexists(out / "trials" / t.id):
            continue
        if os.path.islink(src_trial):
            if log:
                log(f"not reused: {clip(str(src_trial))} is a link (never followed)")
            continue
        if not src_trial.is_dir() or not take(t):
            continue
        state = read_state(src_trial)
        if state.get("status") != "done":
            continue
        if state.get("trial") != asdict(t):
            raise LpmError(f"{flag}: {clip(str(src_trial / 'state.json'))} names another trial than its folder; "
                           "not reused")
        yield t, src_trial, state


def _capped(total: int, files: list[tuple[str, int]], flag: str, what: str) -> int:
    """The bytes planned so far with `files` added, or one LpmError line past MAX_REUSE_BYTES."""
    total += sum(size for _, size in files)
    if total > MAX_REUSE_BYTES:
        raise LpmError(f"{flag}: the {what} to copy hold over {MAX_REUSE_BYTES} bytes (the cap on all of them "
                       "together); nothing copied")
    return total


def plan_reuse(out: Path, grid: Grid, sources: list[str], log=None) -> list[Copy]:
    """The trials to copy into `out`: each trial of `grid` not in `out` yet and done in one of `sources` with the
    same settings, every file listed and checked and the total capped. Reads only; one LpmError line for a source
    that cannot be taken."""
    settings = check_sources(out, grid, sources)
    plan: dict[str, Copy] = {}
    total = 0
    for src in sources:
        theirs = settings[src]
        for t, src_trial, _ in _finished(out, grid, src, "--reuse", lambda t: t.id in plan,
                                         lambda t, theirs=theirs: _reusable(t.reference is not None, theirs,
                                                                            grid.settings), log):
            results_row(t, src_trial, grid.settings)  # its own step files, checked and matched to the trial
            files = _files(src_trial)
            total = _capped(total, files, "--reuse", "trials")
            plan[t.id] = Copy(t, src_trial, files)
    if log:
        _note_started_here(out, grid, sources, plan, log)
    return list(plan.values())


def _done_there(folder: Path) -> bool:
    """Whether the trial folder `folder` (never followed when a link) finished."""
    return not os.path.islink(folder) and folder.is_dir() and read_state(folder).get("status") == "done"


def _note_started_here(out: Path, grid: Grid, sources: list[str], plan: dict[str, Copy], log) -> None:
    """Say which trials a source finished but this sweep has started (they are never overwritten: the user may
    remove the unfinished folder to take the finished one)."""
    for t in grid.trials():
        here = out / "trials" / t.id
        if t.id in plan or os.path.islink(here) or not here.is_dir():
            continue
        try:
            if read_state(here).get("status") == "done":
                continue
            src = next((s for s in sources if _done_there(Path(s) / "trials" / t.id)), None)
        except LpmError:
            continue  # a state lpm did not write: never taken, nothing to say
        if src is not None:
            log(f"not reused: {t.id} is done in {clip(src)} but started here; remove {clip(str(here))} and rerun "
                "to take the finished one")


def _same_genotype(trial: Path, recorded: str) -> None:
    """The search's genotype.json (what this sweep's training and measurements will read) is the genotype its
    search.json records (what the row reports), or one LpmError line."""
    where = trial / "search" / "genotype.json"
    try:
        geno = parse_genotype(json.dumps(read_checked(where)), DARTS_V2.reduce, allow_path=False).to_dict()
    except LpmError as e:
        raise LpmError(f"--reuse-searches: {clip(str(where))}: {e}; not reused") from None
    if json.dumps(geno, separators=(",", ":")) != recorded:
        raise LpmError(f"--reuse-searches: {clip(str(where))} is not the genotype its search.json records; not "
                       "reused")


def plan_reuse_searches(out: Path, grid: Grid, sources: list[str], taken: set[str], log=None) -> list[Copy]:
    """The search steps to copy into `out`: of each search trial of `grid` not in `out` (nor in `taken`) and done in
    one of `sources` with the same search settings, the search's files alone. Reads only; one LpmError line for a
    source that cannot be taken."""
    plan: dict[str, Copy] = {}
    total = 0
    for src in sources:
        theirs = _source_settings(out, src, "--reuse-searches")
        if theirs.get("search") != grid.settings.get("search"):
            raise LpmError(f"--reuse-searches {clip(src)}: that sweep searched with other settings; only searches "
                           "of the same settings can be reused")
        for t, src_trial, state in _finished(out, grid, src, "--reuse-searches",
                                             lambda t: t.kind != "search" or t.id in plan or t.id in taken,
                                             lambda t: True, log):
            row = results_row(t, src_trial, theirs)  # every step file checked under the settings it was made with
            _same_genotype(src_trial, row["genotype"])
            files = [(rel, size) for rel, size in _files(src_trial)
                     if rel in SEARCH_FILES or rel.startswith(SEARCH_DIR)]
            total = _capped(total, files, "--reuse-searches", "searches")
            step = state.get("steps", {}).get("search", {})
            plan[t.id] = Copy(t, src_trial, files, {"steps": {"search": {
                "rc": 0, **({"seconds": step["seconds"]} if step.get("seconds") is not None else {})}}})
    return list(plan.values())


def _copy_file(src: Path, dest: Path, size: int) -> None:
    """`src` into a new `dest` (no link followed either side), at most `size` bytes: the file as it was listed."""
    with open_own(src, "read") as f, new_temp(dest) as g:
        left = size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            g.write(chunk)
            left -= len(chunk)


def reuse_trials(out: Path, plan: list[Copy]) -> list[str]:
    """Copy the planned trials into `out`/trials (each into a temporary folder, renamed into place; none half
    copied). Returns the ids copied."""
    copied: list[str] = []
    trials = own_dir(out, "trials")
    for c in plan:
        dest = trials / c.trial.id
        with flocked(out / ".trials.mutex"):  # among the sweeps of `out`, as their trial locks are
            if dest.exists() or os.path.islink(dest):
                continue
            tmp = Path(tempfile.mkdtemp(prefix=f".reuse-{c.trial.id[:40]}-", dir=trials))
            try:
                for rel, size in c.files:
                    parts = rel.split("/")
                    _copy_file(c.source / rel, own_dir(tmp, *parts[:-1]) / parts[-1], size)
                if c.state is not None:
                    write_state(tmp, c.state)
                os.rename(tmp, dest)
            except (OSError, LpmError) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                why = str(e) if isinstance(e, LpmError) else e.strerror or type(e).__name__
                raise LpmError(f"--reuse: cannot copy {clip(c.trial.id, 80)} ({why}); nothing of it was kept, the "
                               "sweep runs it instead if you drop --reuse") from None
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        copied.append(c.trial.id)
    return copied
