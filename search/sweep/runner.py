"""Runs a sweep's trials: each trial under its lock, step after step, on this machine (`--jobs N` trials at a time,
measurements one at a time per device) or on Ray (`lpm_zoo.search.sweep.ray_runner`). Finished steps are skipped, so a
rerun resumes; Ctrl-C stops every running step once (each saves its checkpoint) and the sweep exits 130."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from lpm_zoo.errors import LpmError
from lpm_zoo.files import own_dir
from lpm_zoo.search.sweep.grid import Grid, Trial
from lpm_zoo.search.sweep.results import collect_rows, results_row, write_tables
from lpm_zoo.search.sweep.trial import (
    Children,
    Step,
    acquire,
    execute,
    flocked,
    read_state,
    release,
    trial_steps,
    write_state,
)


class StepRunner(Protocol):
    """Where steps run: `run_step(folder, step)` returns what `trial.execute` returns."""

    children: Children
    jobs: int

    def run_step(self, folder: Path, step: Step) -> dict[str, Any]:  # noqa: D102
        ...

    def close(self) -> None:  # noqa: D102
        ...


class LocalRunner:
    """Steps as subprocesses on this machine, in the trial's folder."""

    def __init__(self, jobs: int, prefix: list[str]):
        self.jobs, self.prefix, self.children = jobs, prefix, Children()

    def run_step(self, folder: Path, step: Step) -> dict[str, Any]:
        """Run `step` here, in `folder`."""
        return execute(step, folder, self.prefix, {"host": socket.gethostname(), "node": None}, self.children)

    def close(self) -> None:
        """Nothing to stop."""


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"


class Sweep:
    """The trials of `grid` in `out`, run by `runner`."""

    def __init__(self, out: Path, grid: Grid, runner: StepRunner, log: Callable[[str], None]):
        self.out, self.grid, self.runner, self.log = out, grid, runner, log
        self.trials = grid.trials()
        self.mutex = out / ".trials.mutex"
        self.t0 = time.time()
        self.finished_now: list[float] = []
        self.count_lock = threading.Lock()

    def folder(self, t: Trial) -> Path:
        """The trial's folder (its path; `run_trial` creates it, never through a link)."""
        return self.out / "trials" / t.id

    def status(self) -> dict[str, list[str]]:
        """Trial ids by status as the folders say (done, failed, interrupted, running, pending)."""
        out: dict[str, list[str]] = {}
        for t in self.trials:
            out.setdefault(read_state(self.folder(t)).get("status", "pending"), []).append(t.id)
        return out

    def run(self) -> dict[str, Any]:
        """Run every trial not done yet; returns counts (done, done_before, failed, busy, interrupted)."""
        todo = [t for t in self.trials if not self.finished(t, read_state(self.folder(t)))]
        summary = {"trials": len(self.trials), "done_before": len(self.trials) - len(todo), "done": 0, "failed": [],
                   "busy": [], "interrupted": 0}
        self.todo = len(todo)
        self.log(f"{len(self.trials)} trials, {summary['done_before']} done before, {len(todo)} to run "
                 f"({self.runner.jobs} at a time)")
        if not todo:
            self.write_tables()
            return summary
        stop = self.runner.children
        previous = None
        if threading.current_thread() is threading.main_thread():
            def on_sigint(signum, frame):  # noqa: ARG001
                if stop.stopping.is_set():
                    stop.kill()
                    raise KeyboardInterrupt
                self.log("stopping: each running step saves its checkpoint and exits (Ctrl-C again to stop at once)")
                stop.interrupt()

            previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            with ThreadPoolExecutor(self.runner.jobs) as pool:
                futures = {pool.submit(self.run_trial, t): t for t in todo}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for f in done:
                        try:
                            what, detail = f.result()
                        except (OSError, LpmError) as e:  # the trial folder itself: said, the other trials go on
                            what, detail = "failed", str(e) if isinstance(e, LpmError) else f"{type(e).__name__}: {e}"
                        if what == "done":
                            summary["done"] += 1
                        elif what == "failed":
                            summary["failed"].append(f"{futures[f].id}: {detail}")
                        elif what == "busy":
                            summary["busy"].append(f"{futures[f].id} ({detail})")
                        elif what == "interrupted":
                            summary["interrupted"] += 1
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self.runner.close()
        if stop.stopping.is_set():
            summary["interrupted"] = max(summary["interrupted"], 1)
        try:
            self.write_tables()  # the trials taken with --reuse count even when nothing here finished
        except LpmError as e:
            self.log(f"warning: {e}")
        return summary

    def finished(self, t: Trial, state: dict[str, Any]) -> bool:
        """Whether trial `t` (with its `state`) is done: marked so, and every step's output there, its anytime
        cells' too (a trial taken with --reuse from a sweep without --anytime is done but for those)."""
        return state.get("status") == "done" and all(
            (self.folder(t) / s.stdout).is_file() for s in trial_steps(t, self.grid.settings))

    def run_trial(self, t: Trial) -> tuple[str, str]:
        """One trial under its lock: ('done' | 'failed' | 'busy' | 'interrupted' | 'skipped', detail). Its own steps
        first, then its row and status "done"; then the steps of its anytime cells (--anytime), whose failure is
        kept apart (`anytime_error`) and never takes the trial's own row out of the results."""
        if self.runner.children.stopping.is_set():
            return "interrupted", ""
        folder = own_dir(self.out, "trials", t.id)
        held = acquire(folder, self.mutex)
        if not held["mine"]:
            return "busy", f"pid {held.get('pid')} on {held.get('host')}"
        try:
            state = read_state(folder)
            if self.finished(t, state):  # another sweep finished it meanwhile
                return "skipped", ""
            t_start = time.time()
            steps = trial_steps(t, self.grid.settings)
            later = [s for s in steps if s.anytime is not None and not (folder / s.stdout).is_file()]
            phases = [("anytime_error", later)] if later else []
            if state.get("status") != "done":
                state.update(trial=asdict(t), status="running", attempts=state.get("attempts", 0) + 1)
                state.pop("error", None)
                phases.insert(0, ("error", [s for s in steps if s.anytime is None]))
            state.update(owner={k: held[k] for k in ("pid", "host")}, steps=state.get("steps", {}))
            write_state(folder, state)
            for error_key, group in phases:  # the trial's own steps and row, then its anytime cells'
                what, detail = self._steps(t, folder, state, group, error_key)
                if what == "done":
                    what, detail = self._row(t, folder, state, error_key)
                if what != "done":
                    return what, detail
            self._progress(t, time.time() - t_start)
            return "done", ""
        finally:
            release(folder)

    def _steps(self, t: Trial, folder: Path, state: dict[str, Any], steps: list[Step],
               error_key: str) -> tuple[str, str]:
        """Run the steps not done yet; a failure is recorded under `error_key` (the trial's own steps: it also
        marks the trial failed or interrupted; an anytime cell's: the trial stays done)."""
        own = error_key == "error"
        for step in steps:
            if (folder / step.stdout).is_file():
                continue
            if self.runner.children.stopping.is_set():
                if own:
                    state["status"] = "interrupted"
                    write_state(folder, state)
                return "interrupted", ""
            self.log(f"{t.id}: {step.name}")
            res = self.runner.run_step(folder, step)
            state["steps"][step.name] = res
            if res["rc"] != 0:
                stopped = self.runner.children.stopping.is_set()
                state[error_key] = "interrupted" if stopped and not own else res.get("error", "")
                if own:
                    state["status"] = "interrupted" if stopped else "failed"
                write_state(folder, state)
                if stopped:
                    return "interrupted", ""
                self.log(f"{t.id}: {step.name} failed: {res.get('error', '')}")
                return "failed", f"{step.name}: {res.get('error', '')}"
            write_state(folder, state)
        return "done", ""

    def _row(self, t: Trial, folder: Path, state: dict[str, Any], error_key: str) -> tuple[str, str]:
        """The trial's results row from its step files, kept in its state (status "done"); the tables rewritten."""
        try:
            row = results_row(t, folder, self.grid.settings)
        except (LpmError, KeyError, TypeError, ValueError) as e:  # a step's JSON without what the row needs
            why = str(e) if isinstance(e, LpmError) else f"a step's output lacks what the row needs ({type(e).__name__}: {e})"
            state[error_key] = why
            if error_key == "error":
                state["status"] = "failed"
            write_state(folder, state)
            return "failed", why
        state.pop(error_key, None)
        state.update(status="done", row=row, finished_at=time.time())
        write_state(folder, state)
        try:
            self.write_tables()
        except LpmError as e:  # the trial is done all the same; the next one rewrites the tables
            self.log(f"warning: {e}")
        return "done", ""

    def _progress(self, t: Trial, seconds: float) -> None:
        with self.count_lock:
            self.finished_now.append(seconds)
            n = len(self.finished_now)
            left = self.todo - n
            elapsed = time.time() - self.t0
            eta = elapsed / n * left if n else 0.0
            self.log(f"[{n}/{self.todo}] {t.id} done in {_fmt_s(seconds)}; {left} left"
                     + (f", ETA {_fmt_s(eta)}" if left else f", all done in {_fmt_s(elapsed)}"))

    def write_tables(self) -> None:
        """Rewrite results.csv and results.parquet from every finished trial's step outputs (under a lock among
        sweeps)."""
        with flocked(self.out / ".results.mutex"):
            write_tables(self.out, collect_rows(self.out, self.trials, self.grid.settings))


def stderr_log(line: str) -> None:
    """One progress line on stderr."""
    print(f"lpm sweep: {line}", file=sys.stderr, flush=True)
