"""Run one `lpm sweep` on a two-node Ray cluster of this machine (loopback only, a raylet and one CPU per node, the
head declaring this machine's device `lpm-device-<slug>`), then stop the cluster: the local-against-Ray experiment
of BENCHMARKS.md ("Sweeps").
    usage: python benchmarks/sweep_on_two_nodes.py [lpm sweep options...]   (--ray and --device-resource are added)
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lpm_zoo.hardware import host_slug

NODE = Path(__file__).parents[1] / "tests" / "ray_node.py"


def start(temp_dir: str, env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    """A node (tests/ray_node.py) in a session of its own; its process and GCS address."""
    p = subprocess.Popen([sys.executable, str(NODE), temp_dir, *args], stdout=subprocess.PIPE, text=True, env=env,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while select.select([p.stdout], [], [], max(0.0, deadline - time.time()))[0]:
        line = p.stdout.readline()
        if line.startswith("ready "):
            return p, line.split()[1]
        if not line:
            break
    raise SystemExit("a Ray node did not start")


def main(argv: list[str]) -> int:
    """Start the two nodes, run the sweep against them, stop them; the sweep's exit code."""
    resource = f"lpm-device-{host_slug()}"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    temp_dir = tempfile.mkdtemp(prefix="lpmb", dir="/tmp")
    nodes = []
    try:
        head, address = start(temp_dir, env, "--resources", json.dumps({resource: 1}))
        nodes.append(head)
        nodes.append(start(temp_dir, env, address)[0])
        t0 = time.time()
        rc = subprocess.call([sys.executable, "-m", "lpm_zoo", "sweep", *argv, "--ray", address,
                              "--device-resource", resource], env=env)
        print(f"sweep_on_two_nodes: lpm sweep took {time.time() - t0:.0f} s (exit {rc})", file=sys.stderr)
        return rc
    finally:
        for p in nodes:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
