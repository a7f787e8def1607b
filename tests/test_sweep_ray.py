"""`lpm sweep --ray`: two Ray nodes on loopback (tests/ray_node.py, a raylet each, one CPU each), the head declaring
the measuring device as a custom resource. Searches and trainings run on both nodes, measurements only on the
head; the other node is killed with SIGKILL mid-sweep, and the sweep still finishes every trial exactly once.
The steps are tests/sweep_fake_lpm.py (`--step-command`)."""

import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from proc_tree import kill_alive, proc_tree

from lpm_zoo.ray_cluster import ONE_MACHINE_ENV

pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time under pytest-xdist

NODE = Path(__file__).with_name("ray_node.py")
FAKE = Path(__file__).with_name("sweep_fake_lpm.py")
RESOURCE = "lpm-device-sweeptest"


def _start(temp_dir: str, env: dict, nodes: list, *args: str) -> tuple[str, str]:
    log = open(os.path.join(temp_dir, f"node{len(nodes)}.log"), "w")
    p = subprocess.Popen([sys.executable, str(NODE), temp_dir, *args], stdout=subprocess.PIPE, stderr=log, text=True,
                         env=env, start_new_session=True)
    log.close()
    nodes.append(p)
    deadline = time.time() + 90
    while select.select([p.stdout], [], [], max(0.0, deadline - time.time()))[0]:
        line = p.stdout.readline()
        if line.startswith("ready "):
            _, address, node_id = line.split()
            return address, node_id
        if not line:
            break
    raise AssertionError(Path(temp_dir, f"node{len(nodes) - 1}.log").read_text()[-2000:])


def _states(out: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "state.json").read_text()) for d in (out / "trials").glob("*")
            if (d / "state.json").is_file()}


@pytest.mark.slow
def test_sweep_on_two_ray_nodes_measures_on_the_device_node_only_and_survives_losing_the_other(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    temp_dir = tempfile.mkdtemp(prefix="lpmsw", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log, out = tmp_path / "steps.log", tmp_path / "sw"
    env = {**os.environ, ONE_MACHINE_ENV: "0", "RAY_USAGE_STATS_ENABLED": "0", "FAKE_LPM_LOG": str(log),
           "FAKE_LPM_SLEEP": "1"}
    nodes: list = []
    seen: dict[int, int] = {}
    try:
        address, head = _start(temp_dir, env, nodes, "--resources", json.dumps({RESOURCE: 1}))
        _, worker = _start(temp_dir, env, nodes, address)
        step = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"
        proc = subprocess.Popen([sys.executable, "-m", "lpm_zoo", "sweep", "--out", str(out), "--ray", address,
                                 "--device-resource", RESOURCE, "--lambda", "0,rel0.5", "--seeds", "0,1",
                                 "--references", "none", "--profiles", "cifar-b1", "--step-command", step],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 150
        while not any(s.get("ran_on", {}).get("node") == worker for st in _states(out).values()
                      for s in st.get("steps", {}).values()):  # a step has run on the worker node
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        doomed = proc_tree(nodes[1].pid)  # the worker node: its raylet, its Ray workers and the steps they run
        seen.update(doomed)
        os.killpg(nodes[1].pid, signal.SIGKILL)
        kill_alive(doomed)  # also what runs in process groups of its own
        done_then = sum(st.get("status") == "done" for st in _states(out).values())
        stdout, err = proc.communicate(timeout=240)
    finally:
        for p in nodes:
            seen.update(proc_tree(p.pid))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        kill_alive(seen)
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "4 of 4 trials done (4 now)" in stdout
    assert done_then < 4  # the node was lost mid-sweep
    states = _states(out)
    assert len(states) == 4 and all(st["status"] == "done" and st["attempts"] == 1 for st in states.values())
    for name in states:  # every measurement on the node declaring the device
        meas = json.loads((out / "trials" / name / "measure-cifar-b1.json").read_text())
        assert meas["ran_on"]["node"] == head, meas["ran_on"]
    rows = (out / "results.csv").read_text().splitlines()[1:]
    assert len(rows) == 4 and len({r.split(",")[0] for r in rows}) == 4  # each trial once in the table
    ends = Counter((e.split()[1], e.split()[2]) for e in log.read_text().splitlines() if e.startswith("end "))
    assert set(ends) == {(t, s) for t in states for s in ("search", "info", "measure-cifar-b1", "train")}
    running = 0  # one measurement at a time on the device
    for e in log.read_text().splitlines():
        if e.split()[2].startswith("measure"):
            running += 1 if e.startswith("start") else -1
            assert running <= 1
