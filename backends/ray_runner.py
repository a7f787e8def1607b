"""Scale-out with Ray: one actor per device measures groups of cells; results stream back to the driver's store.

The driver never times anything: it samples, hands groups out (two in flight per worker) and
writes each result as it arrives, so a lost worker or driver loses only the groups in flight.
Cells and measurements travel as plain data, field by field; the protocol as the frozen
dataclass it is, so a new field reaches the workers without a list to update.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from backends.device import parse_device
from backends.protocol import Protocol
from lpm_zoo.errors import LpmError
from lpm_zoo.space import Cell, Genotype
from lpm_zoo.store import Measurement


class _Worker:
    """Holds one device; measures groups of cells or genotypes sent as plain data."""

    def __init__(self, backend: str, device: str, profile: str, protocol: Protocol, name: str | None, seed: int):
        from backends.profiler import Measurer

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


def _ray():
    try:
        import ray
    except ImportError:
        raise LpmError("--ray needs Ray: pip install 'lpm-zoo[ray]' (or pip install ray)") from None
    return ray


class RayPool:
    """Ray actors, one per device, started on the cluster at `address` ('local' starts one on this machine)."""

    def __init__(self, address: str, backend: str, device: str, profile: str, protocol: Protocol,
                 name: str | None, seed: int, workers: int | None = None):
        ray = _ray()
        self.ray = ray
        self._own = False
        kind, _ = parse_device(device)
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=workers * protocol.threads if workers and kind == "cpu" else None,
                         include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                try:
                    ray.init(address=address, log_to_driver=False)
                except Exception as e:  # noqa: BLE001 - ray raises several types for a bad address
                    raise LpmError(f"cannot connect to Ray at {address!r}: {e}") from None
            self._own = True
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
        """Results group by group, as they finish (two groups in flight per worker)."""
        ray = self.ray
        queue = [[c.to_dict() if isinstance(c, Genotype) else [list(p) for p in c] for c in cells] for cells in groups]
        pending: dict[Any, Any] = {}
        idle = list(self.workers) * 2
        while queue or pending:
            while queue and idle:
                w = idle.pop()
                pending[w.measure.remote(queue.pop(0))] = w
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                w = pending.pop(ref)
                try:
                    rows = ray.get(ref)
                except Exception as e:  # noqa: BLE001
                    raise LpmError(f"a Ray worker failed: {_cause(e)}") from None
                idle.append(w)
                yield [_from_plain(r) for r in rows]

    def shutdown(self) -> None:
        for w in getattr(self, "workers", []):
            self.ray.kill(w)
        if self._own:
            self.ray.shutdown()


def _cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__


