"""Ray for `lpm profile --ray` and `lpm sweep --ray`: import it (one-line error when missing), keep a cluster of
this machine alone on loopback, and start or join a cluster once per process."""

from __future__ import annotations

import os
from typing import Any

from lpm_zoo.errors import LpmError, clip

#: Ray reads this when imported; "0" keeps the servers a `--ray local` cluster starts on 127.0.0.1
ONE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


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
    try:
        if address == "local":
            ray.init(**local_init)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as e:  # noqa: BLE001 - ray raises several types for a bad address
        raise LpmError(f"cannot connect to Ray at {clip(address, 80)}: {clip(str(e), 160)}") from None
    return True
