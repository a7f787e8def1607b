"""Steps as Ray tasks: searches and trainings on any worker (one CPU each, or one GPU with `--device cuda`),
measurements only on nodes that declare the target device as a custom resource, one at a time per device.

A node declares a device by starting with `ray start ... --resources '{"lpm-device-SLUG": 1}'` (amount 1: each
measurement task takes 1, so two never overlap on that node). A task gets the trial's input files as bytes, runs
the `lpm` step in a temporary folder on its node and returns what the step wrote; the driver writes it into the
trial folder. So the sweep's folder lives on the driver only. A task lost with its node is run again by Ray
(`max_retries`) from the files the driver holds (for a search: its checkpoint as of the step's start).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.hardware import host_slug
from lpm_zoo.ray_cluster import import_ray, join
from lpm_zoo.search.sweep.trial import Children, Step, execute, get_files, lpm_prefix, put_files

RETRIES = 3


def device_resource(name: str | None = None) -> str:
    """The Ray resource a measuring node declares: `lpm-device-<this host's slug>`, or `name` made safe."""
    raw = name or f"lpm-device-{host_slug()}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}", raw):
        raise LpmError(f"--device-resource {clip(raw, 60)}: letters, digits and - _ . : only")
    return raw


def check_ray_address(address: str) -> str:
    """`--ray`'s value when it is local, auto, HOST:PORT or ray://HOST:PORT (port 1-65535); else one LpmError
    line (an empty one included: it never means "run here")."""
    m = re.fullmatch(r"(?:ray://)?([A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\]):([0-9]{1,5})", address)
    if address not in ("local", "auto") and not (m and 1 <= int(m.group(2)) <= 65535):
        raise LpmError(f"--ray {clip(address, 60)}: expected local (a Ray started here), auto, HOST:PORT or "
                       "ray://HOST:PORT of a running cluster")
    return address


def ray_step(step: dict[str, Any], files: dict[str, bytes], prefix: list[str] | None) -> dict[str, Any]:
    """A Ray task: run one step in a temporary folder on this node; its result and the files it wrote."""
    import ray

    ran_on = {"host": socket.gethostname(), "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}
    s = Step.from_dict(step)
    with tempfile.TemporaryDirectory(prefix="lpm-sweep-") as d:
        put_files(Path(d), files)
        res = execute(s, Path(d), prefix or lpm_prefix(), ran_on)
        res["files"] = get_files(Path(d), [*s.outputs, s.stdout, f"{s.name}.log"])
    return res


class RayRunner:
    """Steps as Ray tasks on the cluster at `address` ('local': one started here, declaring this machine's device)."""

    def __init__(self, address: str, resource: str, jobs: int | None, prefix: list[str] | None, gpu: bool,
                 cpus: int = 1):
        self.children = Children()
        self.resource, self.prefix, self.gpu, self.cpus = resource, prefix, gpu, cpus
        self._local = address == "local"
        ray = self.ray = import_ray(self._local)
        self._own = join(ray, address, resources={resource: 1}, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
        have = ray.cluster_resources()
        if have.get(resource, 0) < 1:
            self.close()
            raise LpmError(f"no Ray node declares {resource}, where measurements run: start the device's node with "
                           f"ray start --address=... --resources '{{\"{resource}\": 1}}' (or give --device-resource)")
        self.jobs = jobs or max(1, int(have.get("GPU" if gpu else "CPU", 1) // cpus))
        self.task = ray.remote(max_retries=RETRIES)(ray_step)

    def run_step(self, folder: Path, step: Step) -> dict[str, Any]:
        """Run `step` as a Ray task and write what it returns into `folder`."""
        ray = self.ray
        if step.kind == "measure":
            opts: dict[str, Any] = {"num_cpus": self.cpus, "resources": {self.resource: 1}}
        else:
            opts = {"num_cpus": self.cpus, "num_gpus": 1 if self.gpu and step.kind in ("search", "train") else 0}
        files = get_files(folder, [*step.inputs, f"{step.name}.log"])
        ref = self.task.options(**opts).remote(step.to_dict(), files, self.prefix)
        while not ray.wait([ref], timeout=0.5)[0]:
            if self.children.stopping.is_set():
                ray.cancel(ref, force=True)
                return {"rc": 130, "seconds": 0.0, "ran_on": {}, "error": "interrupted"}
        t0 = time.time()
        try:
            res = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the task's error, or its node lost more than RETRIES times
            cause = getattr(e, "cause", None) or e
            return {"rc": 1, "seconds": time.time() - t0, "ran_on": {},
                    "error": f"Ray task failed: {type(cause).__name__}: {clip(str(cause).strip()[-200:], 200)}"}
        put_files(folder, res.pop("files"))
        return res

    def close(self) -> None:
        """Leave Ray where this runner started or joined it."""
        if self._own:
            self.ray.shutdown()
            self._own = False
