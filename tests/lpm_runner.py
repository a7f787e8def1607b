"""`python -m lpm_zoo ARGS` for the tests, without paying for `import torch` on every call.

A command-line test wants what a user sees: its own process, its own environment and working folder, the exit
code, and stdout and stderr as bytes written to file descriptors 1 and 2. Starting `python -m lpm_zoo` costs 2-4 s
of imports per call, most of the wall time of the refusal tests. `run_lpm` gives the same view from a process forked
off a multiprocessing forkserver that has imported `lpm_zoo.cli` and the modules of its commands once (the server is
single-threaded and has run no torch kernel, so a fork of it is safe). Each call is a fresh fork: nothing one call
does reaches the next, the way nothing one `python` process does reaches the next.

What it does not show, and what keeps real subprocesses in the suite: anything said while those modules are
imported (tests/test_quiet_stderr.py, tests/test_cli.py), settings read once at import (the host identity tests),
and signals (Ctrl-C tests use `subprocess.Popen`).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path

#: the libraries the commands import inside their functions (tests/test_layers.py keeps `lpm --help` light)
HEAVY = ["torch", "numpy", "onnx", "onnxruntime", "sklearn.ensemble", "sklearn.neighbors", "sklearn.linear_model",
         "skops.io", "lpm_zoo.search.searcher", "lpm_zoo.backends.ort_backend", "lpm_zoo.backends.torch_backend",
         "lpm_zoo.predictors.sk",
         # imported on first use, in every forked search or train: an optimizer's first step (torch._dynamo), the
         # built-in data (sklearn.datasets) and the cell pictures (matplotlib.pyplot; the backend is chosen later)
         "torch._dynamo", "sklearn.datasets", "matplotlib.pyplot"]

_context: multiprocessing.context.ForkServerContext | None = None


def _server() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        # the modules of every `lpm` command, as `lpm_zoo.cli.discover_commands` would import them, and what
        # they import when they run (a module that is not installed is passed over by the server)
        ctx.set_forkserver_preload(["lpm_zoo.cli", *sorted({ep.module for ep in entry_points(group="lpm_zoo.commands")}),
                                    *HEAVY])
        _context = ctx
    return _context


def _child(argv: list[str], env: dict[str, str], cwd: str, stdin: str, out: str, err: str) -> None:
    """In the forked process: the environment, folder and file descriptors a `python -m lpm_zoo` would have, then
    `lpm_zoo.cli.main` with its exit code."""
    for fd, path, flags in ((0, stdin, os.O_RDONLY), (1, out, os.O_WRONLY), (2, err, os.O_WRONLY)):
        f = os.open(path, flags)
        os.dup2(f, fd)
        os.close(f)
    sys.stdin = open(0, closefd=False, encoding="utf-8")  # noqa: SIM115 - fd 0 itself, kept open
    sys.argv = [sys.executable, *argv]
    os.environ.clear()
    os.environ.update(env)
    try:
        os.chdir(cwd)
        from lpm_zoo.cli import main  # loaded by the server: no import cost here

        code = main(argv)
    except SystemExit as e:  # argparse's own exits, ended as `sys.exit(main())` would end them
        code = e.code or 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter does with an uncaught exception: its traceback, exit code 1
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_lpm(args: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
            timeout: float = 120, input: str | bytes | None = None, text: bool = True) -> subprocess.CompletedProcess:
    """`lpm ARGS` in a process of its own, like `subprocess.run([sys.executable, "-m", "lpm_zoo", *args],
    capture_output=True, text=text, env=env, cwd=cwd, timeout=timeout, input=input)`."""
    with tempfile.TemporaryDirectory(prefix="lpm-run-") as tmp:
        paths = {name: os.path.join(tmp, name) for name in ("in", "out", "err")}
        data = input.encode() if isinstance(input, str) else (input or b"")
        Path(paths["in"]).write_bytes(data)
        Path(paths["out"]).touch()
        Path(paths["err"]).touch()
        p = _server().Process(target=_child, args=(list(args), dict(os.environ if env is None else env),
                                                   str(cwd or os.getcwd()), paths["in"], paths["out"], paths["err"]))
        p.start()
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join()
            raise subprocess.TimeoutExpired(["lpm", *args], timeout)
        out, err = (Path(paths[k]).read_text(errors="replace") if text else Path(paths[k]).read_bytes()
                    for k in ("out", "err"))
        return subprocess.CompletedProcess(["lpm", *args], p.exitcode, out, err)
