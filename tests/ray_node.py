"""One Ray node on loopback only, for the cluster tests: `python tests/ray_node.py TEMP_DIR [HEAD_ADDRESS] [--resources JSON]`.

Without HEAD_ADDRESS it starts a head node (GCS on a free port); with it, a worker node that
joins that head; `--resources '{"lpm-device-x": 1}'` declares custom resources (as `ray start --resources`).
Either way it prints `ready ADDRESS NODE_ID` once the node is up, and stays until it is
killed (SIGTERM stops the node's processes; the test kills its whole process group).

Why not `ray start`: it rewrites 127.0.0.1 to this machine's network address, whose GCS and
raylet then listen on every interface; told the cluster is this one machine
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps them on 127.0.0.1) it refuses to start a
worker node. So this starts the node as `ray start --block` does, with Ray's own `Node`, given
the address 127.0.0.1: each node is its own raylet, object store and worker processes.
Run it (and the driver) with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in the environment.
"""

from __future__ import annotations

import signal
import sys
import time


def main(argv: list[str]) -> int:
    """Start one node as the arguments say, print its GCS address, and wait until killed."""
    import json

    import ray._private.node
    from ray._private.parameter import RayParams

    resources = {}
    if "--resources" in argv:
        k = argv.index("--resources")
        resources = json.loads(argv[k + 1])
        argv = argv[:k] + argv[k + 2:]
    temp_dir, head_address = argv[0], (argv[1] if len(argv) > 1 else None)
    params = RayParams(
        node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0, temp_dir=temp_dir,
        object_store_memory=100 * 1024 * 1024, min_worker_port=0, max_worker_port=0,
        dashboard_agent_listen_port=None,  # a free port, not the fixed default another cluster may hold
        include_log_monitor=False, resources=resources,
    )
    if head_address:
        params.update(gcs_address=head_address, node_manager_port=0)
    else:
        params.update(include_dashboard=False)
    node = ray._private.node.Node(params, head=head_address is None, shutdown_at_exit=True, spawn_reaper=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # atexit then stops the node's processes
    print(f"ready {node.gcs_address} {node.node_id}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
