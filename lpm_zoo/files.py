"""Opening files lpm finds on disk (a zoo entry's files, a cache stamp): regular files only, never waited on.

A FIFO named `model.safetensors` would block a reader forever and a device file never ends, so
every file the zoo or the store opens without being handed its name on the command line goes
through `open_regular`: checked with `os.stat` before it is opened, opened with `O_NONBLOCK`
(a FIFO swapped in meanwhile cannot block the open) and checked again on the open descriptor.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from lpm_zoo.errors import LpmError

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _refuse_irregular(path: str | Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise LpmError(f"{path} is {kind}, not a regular file; lpm reads only regular files there: "
                       "remove it or put the real file in its place")


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for binary reading when it is a regular file (or a link to one); else a one-line LpmError.

    FileNotFoundError and other OSErrors of the open itself reach the caller unchanged.
    """
    _refuse_irregular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        _refuse_irregular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of regular file `path` (one more than allowed tells the caller it is too long)."""
    with open_regular(path) as f:
        return f.read(limit + 1)
