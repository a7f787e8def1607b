"""Opening files lpm finds on disk (a zoo entry's files, a cache stamp): regular files only, never waited on;
and writing into (and reading back) the folders lpm keeps (a sweep's --out, a search's --out) never through a link.

A FIFO named `model.safetensors` would block a reader forever and a device file never ends, so
every file the zoo or the store opens without being handed its name on the command line goes
through `open_regular`: checked with `os.stat` before it is opened, opened with `O_NONBLOCK`
(a FIFO swapped in meanwhile cannot block the open) and checked again on the open descriptor.

A folder lpm reads back is data, not trusted state: a link planted in it must not make lpm write (or read) a file
elsewhere. Every writer there goes through `own_dir` (folders created or entered, a link refused), `open_own` /
`new_temp` (O_NOFOLLOW, O_EXCL for temporary files) and `write_atomic` (a new temporary file and a rename); every
JSON read there through `read_own_json` (no link, size checked with os.fstat before reading).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, BinaryIO

from lpm_zoo.errors import LpmError, clip

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


# --- folders lpm writes into and reads back (a sweep's --out, a search's --out): never through a link ---------
#: the most bytes of one JSON file read back from such a folder (grid.json, state.json, a step's output)
MAX_JSON_BYTES = 4 << 20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _link_error(path: str | Path) -> LpmError:
    return LpmError(f"{clip(str(path))} is a link where lpm keeps a file or folder of its own; lpm never writes or reads "
                    "through a link there: remove the link (the file it points to is left alone) and rerun")


def refuse_link(path: str | Path) -> bool:
    """Whether `path` exists (as a file, folder or anything but a link); a link is one LpmError line."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise _link_error(path)
    return True


def own_dir(root: str | Path, *parts: str) -> Path:
    """`root`/`parts...` as a folder, each of `parts` created when missing and refused when it is a link or not a
    folder (`root` itself is the folder the user named, so it may be a link the user made)."""
    path = Path(root)
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\0" in part:
            raise LpmError(f"{str(part)[:80]!r} is not a folder name lpm writes")
        path = path / part
        try:
            os.mkdir(path, 0o755)
            continue
        except FileExistsError:
            pass
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise _link_error(path)
        if not stat.S_ISDIR(mode):
            raise LpmError(f"{clip(str(path))} is not a folder; lpm keeps a folder there: move it away and rerun")
    return path


def _open_own(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """os.open with O_NOFOLLOW; a link is one LpmError line; the result must be a regular file."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), mode)  # a FIFO cannot block it
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EEXIST and os.path.islink(path)):
            raise _link_error(path) from None
        if e.errno == errno.ENXIO:  # a FIFO without a reader
            raise LpmError(f"{clip(str(path))} is a FIFO, not a regular file: remove it and rerun") from None
        raise
    try:
        _refuse_irregular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_own(path: str | Path, how: str = "append") -> BinaryIO:
    """A file of lpm's own, never through a link: 'append' (created when missing), 'new' (created, must not exist:
    a temporary file), 'lock' (read-write, created when missing) or 'read'."""
    flags = {"append": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "new": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
             "lock": os.O_RDWR | os.O_CREAT, "read": os.O_RDONLY}[how]
    return os.fdopen(_open_own(path, flags), {"lock": "r+b", "append": "ab", "new": "wb", "read": "rb"}[how])


def new_temp(path: str | Path) -> BinaryIO:
    """`path` created afresh for writing (O_EXCL, O_NOFOLLOW): a left-over regular file of a killed run is removed
    first; a link there is refused, never followed nor removed."""
    if refuse_link(path):
        os.unlink(path)
    return open_own(path, "new")


def write_atomic(path: str | Path, data: bytes) -> None:
    """`data` to `path` through a new temporary file in the same folder and a rename (a reader never sees half a
    file; a link at `path` is replaced by the file, never written through)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with new_temp(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        refuse_link(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            if not os.path.islink(tmp):
                os.unlink(tmp)
        raise


def read_own(path: str | Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """A regular file of lpm's own folder, not through a link, its size checked (os.fstat) before it is read."""
    fd = _open_own(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise LpmError(f"{clip(str(path))} holds {size} bytes; at most {limit} are read there: it is not lpm's file")
        return f.read(limit + 1)[:limit]


def read_own_json(path: str | Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in `path` (read as `read_own` does); a file that is not JSON is one LpmError line."""
    try:
        return json.loads(read_own(path, limit))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise LpmError(f"{clip(str(path))} is not JSON ({type(e).__name__}): not lpm's file") from None
