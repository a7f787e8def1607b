"""Scale-out with Ray: one actor per device measures groups of cells; results stream back to the driver's store.

The driver never times anything: it samples, hands groups out (two in flight per worker) and
writes each result as it arrives, so a lost driver loses only the groups in flight, and a lost
worker (its node died) loses nothing: its groups in flight run again on the workers left.
Cells and measurements travel as plain data, field by field; the protocol as the frozen
dataclass it is, so a new field reaches the workers without a list to update.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from lpm_zoo.backends.device import parse_device
from lpm_zoo.backends.profiling.measurer import Measurer
from lpm_zoo.backends.protocol import Protocol
from lpm_zoo.errors import LpmError
from lpm_zoo.ray_cluster import ONE_MACHINE_ENV, import_ray, join, reread_one_machine
from lpm_zoo.space import Cell, Genotype
from lpm_zoo.store import Measurement

#: Ray reads this when it is imported: "0" makes it take 127.0.0.1 as this machine's address, so the GCS and
#: raylet that `--ray local` starts listen on loopback only (else Ray resolves 127.0.0.1 to the machine's
#: network address and they listen on every interface)


class _Worker:
    """Holds one device; measures groups of cells or genotypes sent as plain data."""

    def __init__(self, backend: str, device: str, profile: str, protocol: Protocol, name: str | None, seed: int):
        self.m = Measurer(backend, device, profile, protocol, name, seed)

    def device_name(self) -> str:
        return self.m.device_name

    def measure(self, cells: list) -> list[dict]:
        """Cells as plain data: a list of [op, input] pairs, or a genotype's dict (both-cell profiles)."""
        cells_t = [Genotype.from_dict(c) if isinstance(c, dict) else tuple((op, int(i)) for op, i in c) for c in cells]
        return [_to_plain(m) for m in self.m.measure(cells_t)]


def _to_plain(m: Measurement) -> dict[str, Any]:
    """A measurement as plain data: every field, the genotype as its dict."""
    return {f.name: m.genotype.to_dict() if f.name == "genotype" else getattr(m, f.name) for f in fields(Measurement)}


def _from_plain(row: dict[str, Any]) -> Measurement:
    """The measurement `_to_plain` wrote."""
    return Measurement(**{**row, "genotype": Genotype.from_dict(row["genotype"])})


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class RayPool:
    """Ray actors, one per device, started on the cluster at `address` ('local' starts one on this machine)."""

    def __init__(self, address: str, backend: str, device: str, profile: str, protocol: Protocol,
                 name: str | None, seed: int, workers: int | None = None,
                 log: Callable[[str], None] = _stderr):
        self._local = address == "local"
        self._saved_env = os.environ.get(ONE_MACHINE_ENV)
        self.log = log
        self._own = False
        self.workers: list[Any] = []
        try:
            self._start(address, backend, device, profile, protocol, name, seed, workers)
        except BaseException:
            self.shutdown()  # a pool that does not start leaves no Ray, and the variable as it was
            raise

    def _start(self, address: str, backend: str, device: str, profile: str, protocol: Protocol,
               name: str | None, seed: int, workers: int | None) -> None:
        ray = self.ray = import_ray(self._local)
        kind, _ = parse_device(device)
        self._own = join(ray, address, num_cpus=workers * protocol.threads if workers and kind == "cpu" else None,
                         include_dashboard=False, log_to_driver=False, configure_logging=False)
        res = ray.cluster_resources()
        if kind == "cuda":
            n = workers or int(res.get("GPU", 0))
            opts = {"num_gpus": 1, "num_cpus": 1}
            worker_device = "cuda:0"  # Ray gives each actor one GPU, visible as its device 0
        else:
            # one CPU worker per machine by default: two timing loops on one machine would slow each other
            n = workers or max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
            opts = {"num_cpus": protocol.threads, "scheduling_strategy": "SPREAD"}
            worker_device = "cpu"
        if n < 1:
            raise LpmError(f"the Ray cluster at {address!r} has no {kind.upper()} to run on ({res})")
        actor = ray.remote(**opts)(_Worker)
        self.workers = [actor.remote(backend, worker_device, profile, protocol, name, seed) for _ in range(n)]
        try:
            names = set(ray.get([w.device_name.remote() for w in self.workers]))
        except Exception as e:  # noqa: BLE001 - an actor's LpmError arrives wrapped by Ray
            raise LpmError(f"a Ray worker could not start: {_cause(e)}") from None
        if len(names) != 1:
            raise LpmError(f"Ray workers hold different devices {sorted(names)}; give --device-name, "
                           "or run one profile per device type")
        self.device_name = names.pop()

    def measure_all(self, groups: list[list[Cell]]) -> Iterable[list[Measurement]]:
        """Results group by group, as they finish (two groups in flight per worker).

        A worker that dies (its process or node lost) is dropped, and its groups in flight are
        measured again by the workers left; with none left it is an LpmError. A group that
        fails on a live worker (a measuring error) is an LpmError at once: it would fail again.
        """
        ray = self.ray
        queue = deque([c.to_dict() if isinstance(c, Genotype) else [list(p) for p in c] for c in cells]
                      for cells in groups)
        pending: dict[Any, tuple[Any, list]] = {}  # ref -> (worker, group)
        idle = list(self.workers) * 2
        while queue or pending:
            while queue and idle:
                w = idle.pop()
                group = queue.popleft()
                pending[w.measure.remote(group)] = (w, group)
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                w, group = pending.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    queue.appendleft(group)  # measured again first, by a worker still alive
                    idle = [x for x in idle if x is not w]
                    self._lose(w, e, 1 + sum(1 for x, _ in pending.values() if x is w))
                    continue
                except Exception as e:  # noqa: BLE001
                    raise LpmError(f"a Ray worker failed: {_cause(e)}") from None
                idle.append(w)
                yield [_from_plain(r) for r in rows]

    def _lose(self, w: Any, error: BaseException, in_flight: int) -> None:
        """Drop worker `w` (once), saying so in one line; an LpmError when it was the last."""
        if w not in self.workers:  # its other group in flight, already counted
            return
        self.workers.remove(w)
        try:
            self.ray.kill(w)
        except Exception:  # noqa: BLE001 - already gone
            pass
        why = f"{type(error).__name__}: its process or node is gone"
        if not self.workers:
            raise LpmError(f"every Ray worker was lost (the last: {why}); what was measured is kept: run the same "
                           "command again to resume")
        left = len(self.workers)
        self.log(f"warning: lost a Ray worker ({why}); its {in_flight} group{'s' * (in_flight > 1)} in flight "
                 f"run again on the {left} worker{'s' * (left > 1)} left")

    def shutdown(self) -> None:
        """Stop the workers, and Ray where this pool started or joined it."""
        for w in self.workers:
            self.ray.kill(w)
        if self._own:
            self.ray.shutdown()
        if self._local:  # back as it was, for another Ray started by this process
            if self._saved_env is None:
                os.environ.pop(ONE_MACHINE_ENV, None)
            else:
                os.environ[ONE_MACHINE_ENV] = self._saved_env
            reread_one_machine()


def _cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
