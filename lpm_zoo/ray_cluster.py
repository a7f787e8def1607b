"""Ray for `lpm profile --ray` and `lpm sweep --ray`: import it (one-line error when missing), keep a cluster of
this machine alone on loopback, and start or join a cluster once per process. An address is checked when the
command line is parsed, and joining waits a bounded time (every network wait has a timeout and a one-line error)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
from typing import Any

from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.timeouts import seconds_from_env

#: Ray reads this when imported; "0" keeps the servers a `--ray local` cluster starts on 127.0.0.1
ONE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


#: seconds to reach a cluster's port, then to join it (ray.init), before a one-line error
CONNECT_TIMEOUT_S, JOIN_TIMEOUT_VAR, JOIN_TIMEOUT_S = 5.0, "LPM_RAY_TIMEOUT_S", 60.0
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\]")


def check_address(text: str) -> str:
    """A `--ray` address: "local", "auto", or HOST:PORT (or ray://HOST:PORT) with a port from 1 to 65535;
    anything else (empty, no port, port 0 or 99999, odd characters) is a one-line LpmError."""
    if text in ("local", "auto"):
        return text
    host, sep, port = (text[len("ray://"):] if text.startswith("ray://") else text).rpartition(":")
    if not (sep and _HOST.fullmatch(host) and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise LpmError(f"--ray {clip(text, 80)}: give local, auto, or a cluster's HOST:PORT (or ray://HOST:PORT) with "
                       "a port from 1 to 65535")
    return text


def ray_address(text: str) -> str:
    """`check_address` as an argparse type: a bad address is refused when the command line is parsed."""
    try:
        return check_address(text)
    except LpmError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def join_timeout() -> float:
    """`JOIN_TIMEOUT_VAR` seconds (1 to 3600), else JOIN_TIMEOUT_S."""
    return seconds_from_env(JOIN_TIMEOUT_VAR, JOIN_TIMEOUT_S, 1.0, 3600.0)


def reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line, a HOST:PORT address whose port takes no TCP connection within `timeout` seconds."""
    host, _, port = address[len("ray://"):].rpartition(":") if address.startswith("ray://") else address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        why = "no answer" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__)
        raise LpmError(f"cannot reach a Ray cluster at {clip(address, 80)}: {printable(why, 80)} (waited at most "
                       f"{timeout:g} s); start it (ray start --head) or give its address") from None


def import_ray(one_machine: bool) -> Any:
    """The ray module; `one_machine`: told first that the cluster is this machine alone (ONE_MACHINE_ENV)."""
    if one_machine:
        os.environ[ONE_MACHINE_ENV] = "0"
    try:
        import ray
    except ImportError:
        raise LpmError("--ray needs Ray: pip install 'lpm-zoo[ray]' (or pip install ray)") from None
    reread_one_machine()  # where ray was imported before
    return ray


def reread_one_machine() -> None:
    """Ray's flag as ONE_MACHINE_ENV now says (Ray reads it only when imported)."""
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = ray_constants.env_bool(ONE_MACHINE_ENV, not ray_constants.IS_WINDOWS_OR_OSX)
    except (ImportError, AttributeError):  # another Ray: its import read the variable, if it knows it
        pass


def join(ray: Any, address: str, **local_init: Any) -> bool:
    """Start a cluster here (`address` "local", with `local_init` for `ray.init`) or join the one at `address`,
    unless this process is in one already; True when this call started or joined it (the caller shuts it down)."""
    if ray.is_initialized():
        return False
    check_address(address)
    if address == "local":  # a cluster started here: no network wait; ray.init keeps its SIGTERM handler
        try:
            ray.init(**local_init)
        except Exception as e:  # noqa: BLE001 - ray raises several types
            raise LpmError(f"cannot start Ray here: {clip(str(e), 160)}") from None
        return True
    if address != "auto":
        reachable(address)
    _bounded_init(ray, address)
    return True


def _bounded_init(ray: Any, address: str) -> None:
    """`ray.init(address)` in a daemon thread, given up after `join_timeout()` seconds (Ray's own retries to a
    server that accepts and says nothing last minutes); then, in this (main) thread, the SIGTERM handler ray.init
    sets only in a main thread (exit, so its atexit hook disconnects)."""
    outcome: list[BaseException | None] = []

    def init() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - ray raises several types for a bad address
            outcome.append(e)

    worker_log = logging.getLogger("ray._private.worker")
    quiet = _NotMainThreadNote()
    worker_log.addFilter(quiet)
    try:
        thread = threading.Thread(target=init, name="lpm-ray-join", daemon=True)
        thread.start()
        timeout = join_timeout()
        thread.join(timeout)
    finally:
        worker_log.removeFilter(quiet)
    if not outcome:
        raise LpmError(f"Ray at {clip(address, 80)} did not answer in {timeout:g} s ({JOIN_TIMEOUT_VAR}): is a Ray "
                       "cluster (not another server) listening there?")
    if outcome[0] is not None:
        raise LpmError(f"cannot connect to Ray at {clip(address, 80)}: {clip(str(outcome[0]), 160)}") from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


class _NotMainThreadNote(logging.Filter):
    """Drops ray.init's note that it set no SIGTERM handler off the main thread (`_bounded_init` sets it)."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return "SIGTERM handler is not set" not in record.getMessage()
