"""A trial's folder: its lock, its state, its steps and how a step runs.

Layout of DIR/trials/ID/: `lock` (the owner, while a sweep runs the trial), `state.json` (status, each
step's exit code and where it ran, and at the end the trial's results row), `search/` (`lpm search --out`:
checkpoint, genotype, history), `search.json`, `info.json` (`lpm info`: multiply-adds), `measure-PROFILE.json`
(one per profile, with `ran_on`), `train/` and `train.json`, for a λ = 0 search with --anytime epochs N also
`genotype-eN.json`, `measure-PROFILE-eN.json`, `train-eN/` and `train-eN.json`, and each step's log. A step is done once its JSON
exists (written by a rename after the step exits 0), so a rerun skips it; an interrupted search or training
resumes from the checkpoint in its folder.

Every step is an `lpm` command run as a subprocess (`python -m lpm_zoo ...`): the same on this machine and in a
Ray task, Ctrl-C reaches it as one SIGINT (it then saves its checkpoint and exits 130), and it dies with the sweep
that started it (PR_SET_PDEATHSIG on Linux), so a killed sweep leaves no step running on a folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import (
    MAX_JSON_BYTES,
    new_temp,
    open_own,
    own_dir,
    read_own,
    read_own_json,
    read_regular,
    refuse_link,
    write_atomic,
)
from lpm_zoo.search.sweep.checks import bad, integer, number, obj, read_checked, text
from lpm_zoo.search.sweep.grid import Trial, lambda_value, write_json_atomic

LOCK = "lock"
STATE = "state.json"


def lpm_prefix() -> list[str]:
    """The command that runs an `lpm` step: this Python, `-m lpm_zoo`."""
    return [sys.executable, "-m", "lpm_zoo"]


# --- steps ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One `lpm` command of a trial; paths in `argv` are relative to the trial folder."""

    trial: str  # the trial's id (LPM_SWEEP_TRIAL in the step's environment)
    name: str  # search, info, measure-PROFILE, train; genotype-eN, measure-PROFILE-eN, train-eN (--anytime)
    kind: str  # search, info, measure, train, genotype
    argv: list[str]
    stdout: str  # the JSON file the step's stdout becomes (its "done" mark)
    inputs: list[str] = field(default_factory=list)  # what a Ray task needs from the trial folder
    outputs: list[str] = field(default_factory=list)  # folders the step writes into (besides stdout and its log)
    device_key: str | None = None  # measurements: the device they time (one at a time per device)
    anytime: int | None = None  # the search epoch of an anytime cell's step (--anytime), else None

    def to_dict(self) -> dict[str, Any]:
        """The step as plain data (how it travels to a Ray task)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        """The step `to_dict` wrote."""
        return cls(**d)


def trial_steps(trial: Trial, settings: dict[str, Any]) -> list[Step]:
    """The trial's steps in order: search (not for a reference), `lpm info` (multiply-adds), one measurement per
    profile, training; then, for a λ = 0 search with `anytime` epochs, per epoch N its genotype after N
    (genotype-eN.json), measured and trained the same way (measure-PROFILE-eN, train-eN)."""
    steps = []
    if trial.reference:
        geno, geno_in = trial.reference_spec, []
    else:
        lam, rel = lambda_value(trial.lam)
        argv = ["search", "--method", trial.method, "--dataset", trial.dataset, "--seed", str(trial.seed),
                "--predictor", trial.predictor, "--lambda", f"{lam:g}", *(["--relative"] if rel else []),
                *(["--noise", f"{trial.noise:g}"] if trial.noise else []), *settings["search"],
                "--out", "search", "--json", "--no-progress"]
        steps.append(Step(trial.id, "search", "search", argv, "search.json", ["search"], ["search"]))
        geno, geno_in = "search/genotype.json", ["search/genotype.json"]
    steps.append(Step(trial.id, "info", "info", ["info", geno, "--setting", "cifar", "--json"], "info.json",
                      list(geno_in)))  # parameters and multiply-adds of the C = 36, 20-cell network
    steps += _evaluation(trial, settings, geno, geno_in, None)
    if trial.kind == "search" and trial.lam == "0":
        for epoch in settings.get("anytime", []):
            name = anytime_genotype(epoch)
            argv = ["search", "--out", "search", "--genotype-after", str(epoch), "--json"]
            steps.append(Step(trial.id, f"genotype-e{epoch}", "genotype", argv, name, ["search/history.json"],
                              anytime=epoch))
            steps += _evaluation(trial, settings, name, [name], epoch)
    return steps


def anytime_genotype(epoch: int) -> str:
    """The file (in the trial folder) of a λ = 0 search's genotype after `epoch` (`lpm sweep --anytime`)."""
    return f"genotype-e{epoch}.json"


def produced_genotype(arg: str) -> bool:
    """Whether a step argument is a genotype file an earlier step of the trial writes (the search's, or an
    anytime one)."""
    return arg == "search/genotype.json" or (arg.startswith("genotype-e") and arg.endswith(".json"))


def _evaluation(trial: Trial, settings: dict[str, Any], geno: str, geno_in: list[str],
                anytime: int | None) -> list[Step]:
    """The measurements (one per profile) and the training of genotype `geno`: the trial's own cell's (`anytime`
    None), or the cell after search epoch `anytime` (steps and files suffixed -eN)."""
    m, steps = settings["measure"], []
    suffix = "" if anytime is None else f"-e{anytime}"
    for profile in m["profiles"]:
        db = m["db"].get(profile)
        argv = ["measure", "--backend", m["backend"], "--device", m["device"], "--profile", profile,
                "--genotype", geno, *(["--db", db] if db else []), *m["flags"], "--json"]
        steps.append(Step(trial.id, f"measure-{profile}{suffix}", "measure", argv, f"measure-{profile}{suffix}.json",
                          list(geno_in), [], f"{m['backend']}-{m['device']}", anytime))
    argv = ["train", "--genotype", geno, "--dataset", trial.dataset, "--seed", str(trial.seed), *settings["train"],
            "--out", f"train{suffix}", "--json", "--no-progress"]
    steps.append(Step(trial.id, f"train{suffix}", "train", argv, f"train{suffix}.json", [*geno_in, f"train{suffix}"],
                      [f"train{suffix}"], anytime=anytime))
    return steps


def _child_setup() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell may have left SIGINT ignored
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the sweep that started it (Linux)


class Children:
    """The step subprocesses running now, so a Ctrl-C reaches each one once."""

    def __init__(self) -> None:
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def kill(self) -> None:
        """SIGKILL every running step (a second Ctrl-C): what each saved last is kept."""
        with self.lock:
            for p in self.procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()

    def interrupt(self) -> None:
        """Stop starting steps; SIGINT each running one (it saves its checkpoint and exits 130)."""
        self.stopping.set()
        with self.lock:
            for p in self.procs:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)


def device_lock_path(key: str) -> Path:
    """The lock file serialising measurements of one device on this machine (in the temp folder: all sweeps)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:100]
    return Path(tempfile.gettempdir()) / f"lpm-measure-{safe}.lock"


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing, never through a link) for the duration; released if
    the process dies."""
    with open_own(path, "lock") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield


def execute(step: Step, cwd: Path, prefix: list[str], ran_on: dict[str, Any],
            children: Children | None = None) -> dict[str, Any]:
    """Run `step` in folder `cwd`: its stdout into `step.stdout` (renamed into place on exit 0), stderr appended to
    its log. Returns its exit code, seconds, where it ran and, on failure, the log's last line."""
    if children is not None and children.stopping.is_set():
        return {"rc": 130, "seconds": 0.0, "ran_on": ran_on, "error": "interrupted"}
    tmp = cwd / f".{step.stdout}.tmp"
    lock = flocked(device_lock_path(step.device_key)) if step.device_key else contextlib.nullcontext()
    t0 = time.time()
    with lock, new_temp(tmp) as out, open_own(cwd / f"{step.name}.log", "append") as log:
        if children is not None and children.stopping.is_set():
            return {"rc": 130, "seconds": 0.0, "ran_on": ran_on, "error": "interrupted"}
        log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(step.argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen([*prefix, *step.argv], cwd=cwd, stdout=out, stderr=log, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "LPM_SWEEP_TRIAL": step.trial}, preexec_fn=_child_setup,
                                    start_new_session=True)
        except OSError as e:
            return {"rc": 127, "seconds": 0.0, "ran_on": ran_on,
                    "error": f"cannot start {clip(prefix[0], 80)}: {e.strerror}"}
        if children is not None:
            with children.lock:
                children.procs.add(proc)
        try:
            rc = proc.wait()
        finally:
            if children is not None:
                with children.lock:
                    children.procs.discard(proc)
    seconds = time.time() - t0
    result = {"rc": rc, "seconds": round(seconds, 3), "ran_on": {**ran_on, "step_pid": proc.pid}}
    if rc == 0:
        try:
            data = json.loads(read_own(tmp, MAX_JSON_BYTES).decode().strip().splitlines()[-1])
            obj(data, tmp)
        except (OSError, ValueError, IndexError, LpmError) as e:
            result.update(rc=1, error=f"its output is not a JSON object ({type(e).__name__})")
            return result
        if step.kind == "measure":
            data["ran_on"] = result["ran_on"]
        write_json_atomic(cwd / step.stdout, data)
        tmp.unlink(missing_ok=True)
    else:
        result["error"] = last_line(cwd / f"{step.name}.log") or f"exit code {rc}"
    return result


def last_line(path: Path) -> str:
    """The last non-empty line of a log (at most 300 characters)."""
    try:
        with open_own(path, "read") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [x for x in f.read(4096).decode(errors="replace").splitlines() if x.strip()]
    except (OSError, LpmError):
        return ""
    return lines[-1][:300] if lines else ""


# --- the lock ---------------------------------------------------------------------------------------
def _start_time(pid: int) -> int | None:
    try:
        text = read_regular(f"/proc/{pid}/stat", 4096).decode()
        return int(text[text.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner() -> dict[str, Any]:
    """This process as a lock's owner: pid, host, start time (to tell a reused pid) and since when."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()), "since": time.time()}


def owner_alive(o: dict[str, Any]) -> bool:
    """Whether a lock's owner may still run: another host's is assumed alive; on this host, only a process whose
    pid and start time are the ones the lock records. A lock whose owner cannot be verified that way (no start time
    while this host has them, a pid that is not a number) was not written by a sweep here: it counts as stale, so
    a planted lock naming a live process (pid 1) never blocks a trial."""
    if o.get("host") != socket.gethostname():
        return True
    pid, start = o.get("pid"), o.get("start")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False  # not a lock this code wrote
    if start is None and _start_time(os.getpid()) is not None:
        return False  # this host records start times: the lock's owner cannot be verified
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or _start_time(pid) in (None, start)


def acquire(folder: Path, mutex: Path) -> dict[str, Any] | None:
    """Take the trial's lock (O_EXCL), taking over one whose owner died on this host (or cannot be verified, see
    `owner_alive`). Returns the owner that holds it, with 'mine': True when the lock is now ours. `folder` is
    created when missing (in a folder that exists) and refused when it is a link."""
    path = own_dir(folder.parent, folder.name) / LOCK
    me = owner()
    with flocked(mutex):  # check and take over as one step among the sweeps of this folder
        for _ in range(2):
            try:
                f = open_own(path, "new")
            except FileExistsError:
                try:
                    held = read_own_json(path, 4096)
                except (OSError, LpmError):
                    held = {}
                if isinstance(held, dict) and "host" in held and owner_alive(held):  # torn: its writer died
                    return {**held, "mine": False}
                refuse_link(path)
                path.unlink(missing_ok=True)  # a dead sweep's lock (or a torn one): taken over
                continue
            with f:
                f.write(json.dumps(me).encode())
            return {**me, "mine": True}
    raise LpmError(f"cannot take the lock {clip(str(path))}")


def release(folder: Path) -> None:
    """Drop the trial's lock if this process holds it."""
    path = folder / LOCK
    try:
        held = read_own_json(path, 4096)
    except (OSError, LpmError):
        return
    if isinstance(held, dict) and held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


# --- state ------------------------------------------------------------------------------------------
STATUSES = ("running", "done", "failed", "interrupted")


def read_state(folder: Path) -> dict[str, Any]:
    """The trial's state.json, checked ({} when there is none; a link or a value lpm does not write is one
    LpmError line)."""
    path = folder / STATE
    if not refuse_link(path):
        return {}
    return check_state(read_checked(path), path)


def check_state(s: dict[str, Any], where: Path) -> dict[str, Any]:
    """A state.json's values as the runner uses them: status, attempts, steps (each a dict), error, owner."""
    if "status" in s:
        text(s["status"], where, "status", 20, STATUSES)
    if "attempts" in s:
        integer(s["attempts"], where, "attempts", 0, 10**6)
    steps = obj(s.get("steps", {}), where, "steps")
    for name, res in steps.items():
        text(name, where, "a step's name", 200)
        r = obj(res, where, f"steps.{name}")
        integer(r.get("rc", 0), where, f"steps.{name}.rc", -(2**31), 2**31)
        number(r.get("seconds"), where, f"steps.{name}.seconds", 0.0)
    for key in ("error", "anytime_error"):
        if key in s and not isinstance(s[key], str):
            raise bad(where, f"{key} is not a string")
    return s


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Write state.json atomically."""
    write_json_atomic(folder / STATE, state)


def put_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write files (relative path -> bytes) under `folder`, each through a rename; a path may not leave `folder`
    nor pass through a link."""
    for rel, data in files.items():
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise LpmError(f"a step returned a file outside its trial folder: {clip(rel, 80)}")
        write_atomic(own_dir(folder, *parts[:-1]) / parts[-1], data)


def get_files(folder: Path, paths: list[str]) -> dict[str, bytes]:
    """Files (relative path -> bytes) under `folder` at `paths` (files, or folders taken whole); missing ones and
    links skipped (never followed)."""
    out = {}
    for rel in paths:
        p = folder / rel
        if p.is_symlink() or not p.exists():
            continue
        if p.is_file():
            out[rel] = read_own(p, MAX_STEP_FILE)
        elif p.is_dir():
            for root, dirs, names in os.walk(p, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
                for name in sorted(names):
                    f = Path(root) / name
                    if not f.is_symlink() and f.is_file() and not name.endswith(".tmp"):
                        out[str(f.relative_to(folder))] = read_own(f, MAX_STEP_FILE)
    return out


#: the most bytes of one file a step hands to (or gets back from) a Ray task
MAX_STEP_FILE = 1 << 30
