"""Ray: the protocol reaches every worker whole, the CLI's defaults run, a lost node's groups are run again elsewhere.

The protocol travels three ways: to Ray actors (the dataclass), to local worker processes (as
`lpm profile` flags) and into the store (a row's recorded protocol, read back by `lpm recheck`).
The transport tests round-trip a protocol whose every field differs from the default, so a new
field that a transport forgets fails here. The cluster test starts two Ray nodes on loopback,
each with its own raylet and one CPU, kills the worker node mid-run, and checks the store.
"""

import ipaddress
import os
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from proc_tree import kill_alive, proc_tree

from lpm_zoo.backends.commands.options import protocol_from_args
from lpm_zoo.backends.profiling.ray import ONE_MACHINE_ENV, RayPool, _to_plain
from lpm_zoo.backends.profiling.recheck import recorded_protocol
from lpm_zoo.backends.profiling.workers import _child_argv
from lpm_zoo.backends.protocol import Protocol, protocol_flags
from lpm_zoo.cli import build_parser, discover_commands
from lpm_zoo.errors import LpmError
from lpm_zoo.profiles import get_profile
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.store import Measurement, MeasurementStore

pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time under pytest-xdist

#: a value other than the default for every Protocol field (valid together); a new field must be added here
OTHER = {"warmup": 2, "warmup_s": 0.5, "rounds": 7, "reps": 3, "threads": 2, "statistic": "median", "interleave": 3,
         "clock": "wall", "reference": False, "target_pct": 5.0, "min_rounds": 4,
         "backend_options": (("cuda_graph", False),)}  # an option of the torch backend (parsed for CUDA: CUDA only)


NODE = Path(__file__).with_name("ray_node.py")


def _other_protocol() -> Protocol:
    names = [f.name for f in fields(Protocol)]
    assert sorted(OTHER) == sorted(names), "give each Protocol field a non-default value in OTHER"
    p = Protocol(**OTHER)
    assert all(getattr(p, f.name) != f.default for f in fields(Protocol))
    return p


def _lpm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lpm_zoo", *args]


# --- the protocol over each transport ------------------------------------------------------
def test_every_protocol_field_survives_the_cli_flags_and_the_local_workers_command_line():
    p = _other_protocol()
    parser = build_parser(discover_commands())
    args = parser.parse_args(["profile", "--backend", "torch", "--device", "cuda", "--samples", "4", "--db", "x.db",
                              *protocol_flags(p)])
    assert protocol_from_args(args, args.interleave) == p
    argv = _child_argv(args, p, 1, 2)
    assert argv[:3] == [sys.executable, "-m", "lpm_zoo"] and argv[argv.index("--shard") + 1] == "1/2"
    child = parser.parse_args(argv[3:])
    assert protocol_from_args(child, child.interleave) == p
    default = Protocol()  # and the default, whose target_pct is unset (fixed rounds)
    args = parser.parse_args(["profile", "--backend", "ort", "--samples", "4", "--db", "x.db",
                              *protocol_flags(default)])
    assert protocol_from_args(args, args.interleave) == default


@pytest.mark.slow
def test_every_protocol_field_reaches_a_ray_actor_and_the_store(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    # a CPU's backend option: the OpenVINO plugin's (this repository's, installed by `make venv`)
    p = replace(_other_protocol(), backend_options=(("precision", "f32"),))
    env_before = os.environ.get(ONE_MACHINE_ENV)
    pool = RayPool("local", "openvino", "cpu", "cifar-b1", p, None, 0, workers=1)
    try:
        ops, inputs, _ = sample_unique_arrays(1, 0)
        cell = get_profile("cifar-b1").from_arrays(ops[0], inputs[0])
        (group,) = list(pool.measure_all([[cell]]))
    finally:
        pool.shutdown()
    assert os.environ.get(ONE_MACHINE_ENV) == env_before  # put back as it was
    (m,) = group
    assert m.genotype == cell and m.protocol["reps"] == 3 and len(m.runs_ms) % 3 == 0
    proto, seed = recorded_protocol({"protocol": m.protocol})  # what `lpm recheck` rebuilds from the row
    assert proto == p and seed == 0


# --- a lost worker, without a cluster --------------------------------------------------------
class _ActorGone(Exception):
    """Stands for ray.exceptions.RayActorError."""


class _Ref:
    def __init__(self, worker, group):
        self.worker, self.group = worker, group


class _FakeWorker:
    """An actor whose calls return refs; `dead` ones fail as Ray's do when the actor's node is gone."""

    def __init__(self, name: str, dead: bool = False):
        self.name, self.dead, self.calls = name, dead, 0
        self.measure = SimpleNamespace(remote=self._remote)

    def _remote(self, group):
        self.calls += 1
        return _Ref(self, group)


class _FakeRay:
    exceptions = SimpleNamespace(RayActorError=_ActorGone)

    def __init__(self):
        self.killed = []

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.worker.dead:
            raise _ActorGone(f"actor {ref.worker.name} died")
        return [_to_plain(Measurement(genotype=get_profile("cifar-b1").genotype(tuple(map(tuple, c))), backend="ort",
                                      device="box", profile="cifar-b1", latency_ms=1.0, spread_ms=0.0, runs_ms=[1.0],
                                      protocol={"by": ref.worker.name})) for c in ref.group]

    def kill(self, w):
        self.killed.append(w)


def _pool(*workers):
    pool = RayPool.__new__(RayPool)  # no cluster: a fake ray module and fake actors
    pool.ray, pool.workers, pool.lines = _FakeRay(), list(workers), []
    pool.log = pool.lines.append
    return pool


def _cells(n):
    ops, inputs, _ = sample_unique_arrays(n, 1)
    return [get_profile("cifar-b1").from_arrays(o, i).normal for o, i in zip(ops, inputs)]


def test_a_lost_workers_groups_run_again_on_the_workers_left():
    a, b = _FakeWorker("a", dead=True), _FakeWorker("b")
    pool = _pool(a, b)
    cells = _cells(6)
    got = [m for g in pool.measure_all([[c] for c in cells]) for m in g]
    assert sorted(m.genotype.normal for m in got) == sorted(cells)  # each once: none lost, none twice
    assert {m.protocol["by"] for m in got} == {"b"} and a.calls == 2  # a had two in flight, then none
    assert pool.workers == [b] and pool.ray.killed == [a]
    (line,) = pool.lines
    assert line.startswith("warning: lost a Ray worker (_ActorGone") and "its 2 groups in flight run again on the 1 " \
        "worker left" in line


def test_no_worker_left_is_one_line_lpm_error():
    pool = _pool(_FakeWorker("a", dead=True), _FakeWorker("b", dead=True))
    with pytest.raises(LpmError) as e:
        list(pool.measure_all([[c] for c in _cells(3)]))
    assert str(e.value).startswith("every Ray worker was lost") and "\n" not in str(e.value)
    assert len(pool.lines) == 1  # the first loss was said; the last is the error


# --- listening sockets of a process tree -----------------------------------------------------
def _listening(pids) -> set[str]:
    """The addresses (ip:port) the processes `pids` listen on, over TCP."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            col = line.split()
            if col[3] != "0A" or col[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = col[1].split(":")
            raw = bytes.fromhex(addr)
            raw = b"".join(raw[k:k + 4][::-1] for k in range(0, len(raw), 4))  # /proc writes 32-bit words host-order
            out.add(f"{ipaddress.ip_address(raw)}:{int(port, 16)}")
    return out


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.rsplit(":", 1)[0])
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


class _Listeners(threading.Thread):
    """Collects, until stopped, what the process trees of `roots` listen on, and their processes (`procs`)."""

    def __init__(self, *roots: int):
        super().__init__(daemon=True)
        self.roots, self.seen, self.procs, self.halt = roots, set(), {}, threading.Event()

    def run(self):
        while not self.halt.wait(0.5):
            for root in self.roots:
                tree = proc_tree(root)
                self.procs.update(tree)
                self.seen |= _listening(tree)

    def stop(self) -> set[str]:
        self.halt.set()
        self.join(5)
        return self.seen


# --- the CLI's defaults --------------------------------------------------------------------
@pytest.mark.slow
def test_profile_ray_local_with_the_clis_defaults_binds_loopback_only(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    db = str(tmp_path / "m.db")
    env = {k: v for k, v in os.environ.items() if k != ONE_MACHINE_ENV}
    proc = subprocess.Popen(_lpm("profile", "--backend", "ort", "--samples", "8", "--db", db, "--ray", "local"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch = _Listeners(proc.pid)
    watch.start()
    try:
        out, err = proc.communicate(timeout=900)  # the defaults run to --max-rounds on a busy machine: 267 s seen
    finally:
        proc.kill()
        seen = watch.stop()
        kill_alive(watch.procs)  # the Ray it started, should it have been left
    assert proc.returncode == 0, err
    assert "8 unique architectures (8 measurements; 8 added now)" in out and "Traceback" not in err
    assert seen and all(_loopback(a) for a in seen), seen  # Ray's GCS and raylet, on 127.0.0.1 only
    with MeasurementStore(db) as s:
        rows = list(s.measurements())
    assert len(rows) == len({r["cell_key"] for r in rows}) == 8
    p = rows[0]["protocol"]  # the CLI's defaults, as the workers used them
    assert (p["statistic"], p["target_pct"], p["max_rounds"], p["reps"], p["warmup"], p["interleave"], p["threads"],
            p["clock"]) == ("ref_ratio", 2.0, 10, 5, 5, 8, 1, "thread")
    assert len({r["protocol"]["reference_baseline_ms"] for r in rows}) == 1


# --- two nodes, one lost mid-run ----------------------------------------------------------------
def _start_node(temp_dir: str, env: dict, nodes: list, head: str | None = None, timeout: float = 90) -> str:
    """Start tests/ray_node.py in a process group of its own (appended to `nodes`); its GCS address."""
    log = open(os.path.join(temp_dir, f"node{len(nodes)}.log"), "w")
    p = subprocess.Popen([sys.executable, str(NODE), temp_dir, *([head] if head else [])], stdout=subprocess.PIPE,
                         stderr=log, text=True, env=env, start_new_session=True)
    log.close()
    nodes.append(p)
    deadline = time.time() + timeout
    while select.select([p.stdout], [], [], max(0.0, deadline - time.time()))[0]:
        line = p.stdout.readline()
        if line.startswith("ready "):
            return line.split()[1]
        if not line:  # it exited
            break
    raise AssertionError(f"a Ray node did not start in {timeout}s: "
                         f"{Path(temp_dir, f'node{len(nodes) - 1}.log').read_text()[-2000:]}")


def _stop_nodes(nodes: list, extra: dict[int, tuple[int, str]]) -> None:
    """Stop each node's process group (SIGTERM, then SIGKILL), and what it started in groups of their own."""
    tree = dict(extra)
    for p in nodes:
        tree.update(proc_tree(p.pid))
    for p in nodes:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 15
    for p in nodes:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(10)
    kill_alive(tree)  # actor processes sit in process groups of their own


@pytest.fixture
def two_nodes():
    """A Ray head and a worker node on 127.0.0.1, one CPU each, with raylets of their own; stopped after the test."""
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    temp_dir = tempfile.mkdtemp(prefix="lpmray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, ONE_MACHINE_ENV: "0", "RAY_USAGE_STATS_ENABLED": "0"}
    nodes: list = []
    seen: dict[int, tuple[int, str]] = {}
    try:
        address = _start_node(temp_dir, env, nodes)
        _start_node(temp_dir, env, nodes, address)
        yield SimpleNamespace(address=address, head=nodes[0], worker=nodes[1], env=env, seen=seen)
    finally:
        _stop_nodes(nodes, seen)
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)


def _rows(db: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_a_lost_worker_node_loses_no_architecture(tmp_path, two_nodes):
    db, n = str(tmp_path / "m.db"), 8
    proc = subprocess.Popen(_lpm("profile", "--backend", "ort", "--samples", str(n), "--db", db, "--ray",
                                 two_nodes.address, "--interleave", "1", "--no-progress", "--warmup", "1",
                                 "--rounds", "3", "--reps", "3"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=two_nodes.env)
    watch = _Listeners(two_nodes.head.pid, two_nodes.worker.pid, proc.pid)
    watch.start()
    try:
        deadline = time.time() + 180
        while _rows(db) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no row in 180 s"
            time.sleep(0.1)
        doomed = proc_tree(two_nodes.worker.pid)  # the worker node: its raylet, agents and the actor it runs
        two_nodes.seen.update(doomed)
        os.killpg(two_nodes.worker.pid, signal.SIGKILL)  # the node dies: its raylet's whole process group,
        kill_alive(doomed)  # and every process it started, also one in a group of its own (an actor left alive would
        # finish its groups unnoticed)
        killed_at, stored_then = time.time(), _rows(db)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
        seen = watch.stop()
    assert any(cmd.startswith("ray::_Worker") for _, cmd in doomed.values()), doomed  # a worker ran on that node
    assert stored_then < n
    assert proc.returncode == 0, err
    lost = [line for line in err.splitlines() if "lost a Ray worker" in line]
    assert len(lost) == 1 and lost[0].startswith("lpm profile: warning: lost a Ray worker"), err
    assert "Traceback" not in err
    assert f"{n} unique architectures ({n} measurements; {n} added now)" in out
    with MeasurementStore(db) as s:
        rows = list(s.measurements())
    _, _, keys = sample_unique_arrays(n, 0)
    assert sorted(r["cell_key"] for r in rows) == sorted(keys)  # every planned architecture, each exactly once
    assert sum(r["timestamp"] > killed_at for r in rows) >= 2  # the dead node's groups, measured on the head's node
    assert seen and all(_loopback(a) for a in seen), seen  # nodes, actors and driver on 127.0.0.1 only
