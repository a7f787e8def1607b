"""The process tree of a test's subprocesses, read from /proc (Linux): what a test kills so that a failure or a
simulated crash leaves nothing running, and only the processes it started (a pid reused since is left alone)."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def stat_fields(text: str) -> list[str]:
    """The fields of a /proc/PID/stat after the command name: state, ppid, ... (starttime is [19])."""
    return text[text.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it is gone."""
    try:
        return int(stat_fields(Path(f"/proc/{pid}/stat").read_text())[19])
    except (OSError, ValueError, IndexError):
        return None


def proc_tree(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of `root` and its descendants."""
    info, children = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rest = stat_fields(stat)
        info[int(d.name)] = (int(rest[19]), cmd)
        children.setdefault(int(rest[1]), []).append(int(d.name))
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in info:
            out[pid] = info[pid]
            todo += children.get(pid, [])
    return out


def kill_alive(procs: dict[int, tuple[int, str]]) -> None:
    """SIGKILL those of `procs` (from `proc_tree`) that are still the same processes."""
    for pid, (start, _) in procs.items():
        if start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
