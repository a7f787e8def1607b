"""Ray: the protocol reaches every worker whole, the CLI's defaults run, a lost worker's groups are run again.

The protocol travels three ways: to Ray actors (the dataclass), to local worker processes (as
`lpm profile` flags) and into the store (a row's recorded protocol, read back by `lpm recheck`).
Each test below round-trips a protocol whose every field differs from the default, so a new field
that a transport forgets fails here.
"""

import ipaddress
import os
import subprocess
import sys
import threading
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest

from backends.commands import _protocol, protocol_flags
from backends.profiler import _recorded_protocol
from backends.protocol import Protocol
from backends.ray_runner import ONE_MACHINE_ENV, RayPool, _to_plain
from backends.workers import _child_argv
from lpm_zoo.cli import build_parser, discover_commands
from lpm_zoo.errors import LpmError
from lpm_zoo.profiles import get_profile
from lpm_zoo.sampler import sample_unique_arrays
from lpm_zoo.store import Measurement, MeasurementStore

#: a value other than the default for every Protocol field (valid together); a new field must be added here
OTHER = {"warmup": 2, "rounds": 7, "reps": 3, "threads": 2, "statistic": "median", "interleave": 3, "clock": "wall",
         "reference": False, "target_pct": 5.0, "min_rounds": 4}


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
    args = parser.parse_args(["profile", "--backend", "ort", "--samples", "4", "--db", "x.db", *protocol_flags(p)])
    assert _protocol(args, args.interleave) == p
    argv = _child_argv(args, p, 1, 2)
    assert argv[:3] == [sys.executable, "-m", "lpm_zoo"] and argv[argv.index("--shard") + 1] == "1/2"
    child = parser.parse_args(argv[3:])
    assert _protocol(child, child.interleave) == p
    default = Protocol()  # and the default, whose target_pct is unset (fixed rounds)
    args = parser.parse_args(["profile", "--backend", "ort", "--samples", "4", "--db", "x.db",
                              *protocol_flags(default)])
    assert _protocol(args, args.interleave) == default


@pytest.mark.slow
def test_every_protocol_field_reaches_a_ray_actor_and_the_store(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    p = _other_protocol()
    pool = RayPool("local", "ort", "cpu", "cifar-b1", p, None, 0, workers=1)
    try:
        ops, inputs, _ = sample_unique_arrays(1, 0)
        cell = get_profile("cifar-b1").from_arrays(ops[0], inputs[0])
        (group,) = list(pool.measure_all([[cell]]))
    finally:
        pool.shutdown()
    assert os.environ.get(ONE_MACHINE_ENV) is None  # put back as it was
    (m,) = group
    assert m.genotype == cell and m.protocol["reps"] == 3 and len(m.runs_ms) % 3 == 0
    proto, seed = _recorded_protocol({"protocol": m.protocol})  # what `lpm recheck` rebuilds from the row
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
def _stat(text: str) -> list[str]:
    """The fields of a /proc/PID/stat after the command name: state, ppid, ... (starttime is [19])."""
    return text[text.rindex(")") + 2:].split()


def _start_time(pid: int) -> int | None:
    try:
        return int(_stat(Path(f"/proc/{pid}/stat").read_text())[19])
    except (OSError, ValueError, IndexError):
        return None


def _proc_tree(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command) of `root` and its descendants."""
    info, children = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rest = _stat(stat)
        pid = int(d.name)
        info[pid] = (int(rest[19]), cmd)
        children.setdefault(int(rest[1]), []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in info:
            out[pid] = info[pid]
            todo += children.get(pid, [])
    return out


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
    """Collects, until stopped, what the process trees of `roots` listen on."""

    def __init__(self, *roots: int):
        super().__init__(daemon=True)
        self.roots, self.seen, self.halt = roots, set(), threading.Event()

    def run(self):
        while not self.halt.wait(0.5):
            for root in self.roots:
                self.seen |= _listening(_proc_tree(root))

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
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        seen = watch.stop()
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
