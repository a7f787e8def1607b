"""Third-party runtimes' own chatter on stderr (C++ logging, import-time messages) kept off the user's screen.

ExecuTorch prints a dozen lines while it loads and lowers (`[cpuinfo_utils.cpp:71] Reading file ...`,
`[threadpool.cpp:66] Resetting threadpool ...`, torchao's `Failed to load ...`): noise when it works.
`quiet_stderr` sends file descriptor 2 (what C++ writes to) and Python's sys.stderr into a buffer while a
block runs; on success the buffer is dropped, on failure it is summarised in one line of ours. The
redirection is process-wide: another thread's stderr during the block is buffered too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from lpm_zoo.errors import LpmError, printable

#: the summary reads at most this much of the end of the hidden output
MAX_KEPT = 1 << 20


def summary(text: str, what: str) -> str:
    """One line on the hidden output: how many lines `what` printed, and the last non-empty one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1] if len(lines[-1]) <= 160 else lines[-1][:157] + "..."
    return f"{what} printed {len(lines)} line(s) on stderr, the last: {printable(last)}"


@contextlib.contextmanager
def quiet_stderr(what: str) -> Iterator[None]:
    """Hide stderr (fd 2 and sys.stderr) while the block runs; if it raises, say in one line what was hidden.

    An LpmError gets the summary appended to its one line (a failing command still prints one line); any
    other exception is re-raised as it is, after the summary line on the real stderr.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf, open(os.dup(buf.fileno()), "w", errors="replace", buffering=1) as py:
        os.dup2(buf.fileno(), 2)  # the dup shares the buffer's offset: C and Python lines stay in order
        try:
            with contextlib.redirect_stderr(py):  # sys.stderr need not be fd 2 (a test's capture, an IDE)
                yield
        except BaseException as e:
            py.flush()
            text = _restore(saved, buf)
            saved = -1
            line = summary(text, what)
            if line and isinstance(e, LpmError):
                raise LpmError(f"{e}; {line}") from None
            if line and not isinstance(e, KeyboardInterrupt):
                print(f"lpm: {line}", file=sys.stderr, flush=True)
            raise
        finally:
            if saved >= 0:
                _restore(saved, buf)


def _restore(saved: int, buf: IO[bytes]) -> str:
    """Put the real stderr back on fd 2 and return (the end of) what the block wrote."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    size = buf.seek(0, os.SEEK_END)
    buf.seek(max(0, size - MAX_KEPT))
    return buf.read().decode(errors="replace")
