"""The measurement store: one SQLite file (WAL) of latency measurements, safe to kill at any time.

Every `add` is its own transaction, so a killed profiler (even `kill -9`) loses at most the
measurement in flight and never corrupts the file. A row holds the genotype, its canonical key
and encoding, where and how it was measured (backend, device, profile, protocol), the kept
statistic with its spread, and the raw per-run times, so a better statistic can be computed
later without measuring again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from lpm_zoo.encoding import cell_key, cells_to_arrays, encode, genotype_key
from lpm_zoo.errors import LpmError
from lpm_zoo.space import Genotype

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    id           INTEGER PRIMARY KEY,
    backend      TEXT NOT NULL,
    device       TEXT NOT NULL,
    profile      TEXT NOT NULL,
    cell_key     TEXT NOT NULL,  -- canonical key of the normal cell (hex of its 112-bit encoding)
    genotype_key TEXT NOT NULL,  -- normal and reduction cell keys
    encoding     TEXT NOT NULL,  -- the 112-bit encoding of the normal cell as '0'/'1'
    genotype     TEXT NOT NULL,  -- JSON (lpm_zoo.space.Genotype.to_dict)
    latency_ms   REAL NOT NULL,  -- the kept statistic (protocol.statistic)
    spread_ms    REAL,           -- its spread (protocol says which)
    runs_ms      TEXT NOT NULL,  -- JSON list of raw per-run times
    protocol     TEXT NOT NULL,  -- JSON: warm-up, repetitions, threads, statistic, versions, device model
    timestamp    REAL NOT NULL   -- seconds since the epoch
);
CREATE INDEX IF NOT EXISTS measurements_by_set ON measurements (backend, device, profile, cell_key);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Measurement:
    """One timed architecture: the genotype, where and how it was timed, and the times."""

    genotype: Genotype
    backend: str
    device: str
    profile: str
    latency_ms: float
    spread_ms: float
    runs_ms: list[float]
    protocol: dict[str, Any]
    timestamp: float = field(default_factory=time.time)


@dataclass
class LatencyDataset:
    """Unique architectures of one backend/device/profile with their latency (median over repeats)."""

    ops: np.ndarray
    inputs: np.ndarray
    keys: list[str]
    latency_ms: np.ndarray
    spread_ms: np.ndarray
    backend: str
    device: str
    profile: str
    repeatability: dict[str, Any] | None = None  # MeasurementStore.repeatability: the data's noise floor

    def __len__(self) -> int:
        return len(self.keys)

    def genotypes(self) -> list[Genotype]:
        """The measured genotypes (normal cells with the profile's reduction cell)."""
        from lpm_zoo.encoding import arrays_to_cell
        from lpm_zoo.profiles import get_profile

        prof = get_profile(self.profile)
        return [prof.genotype(arrays_to_cell(o, i)) for o, i in zip(self.ops, self.inputs)]


BUNDLED_PREFIX = "bundled:"


def list_bundled() -> list[str]:
    """Names of the measurement stores shipped inside the package (`bundled:NAME` opens one)."""
    from importlib import resources

    folder = resources.files("lpm_zoo").joinpath("data/measurements")
    return sorted(f.name[: -len(".db.gz")] for f in folder.iterdir() if f.name.endswith(".db.gz"))


def resolve_db(spec: str | Path) -> Path:
    """A store path; `bundled:NAME` is a shipped store, unpacked once into the user's cache."""
    text = str(spec)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(spec)
    import gzip
    import os
    import shutil
    from importlib import resources

    name = text[len(BUNDLED_PREFIX):]
    if name not in list_bundled():
        raise LpmError(f"no bundled measurements {name!r}; bundled: {', '.join(list_bundled()) or 'none'}")
    cache = Path(os.environ.get("LPM_ZOO_CACHE", Path.home() / ".cache" / "lpm_zoo")) / "data"
    target = cache / f"{name}.db"
    source = resources.files("lpm_zoo").joinpath(f"data/measurements/{name}.db.gz")
    stamp = target.with_suffix(".size")
    size = str(source.stat().st_size) if hasattr(source, "stat") else ""
    if not target.is_file() or not stamp.is_file() or stamp.read_text() != size:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with source.open("rb") as raw, gzip.open(raw) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)  # atomic: an interrupted unpack never leaves a torn store
        stamp.write_text(size)
    return target


class MeasurementStore:
    """A SQLite measurement file; created on first use, opened in WAL mode (`bundled:NAME` opens a shipped one)."""

    def __init__(self, path: str | Path):
        self.path = resolve_db(path)
        if self.path.exists() and self.path.is_dir():
            raise LpmError(f"{self.path} is a directory; give the path of a database file, e.g. {self.path}/lpm.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.DatabaseError as e:
            raise LpmError(f"{self.path} is not a usable lpm measurement database ({e})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "MeasurementStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------
    @staticmethod
    def _row(m: Measurement) -> tuple:
        bits = "".join("1" if b else "0" for b in encode(m.genotype))
        return (
            m.backend, m.device, m.profile, cell_key(m.genotype), genotype_key(m.genotype), bits,
            m.genotype.to_json(), float(m.latency_ms), float(m.spread_ms),
            json.dumps([round(float(t), 6) for t in m.runs_ms]), json.dumps(m.protocol, sort_keys=True),
            float(m.timestamp),
        )

    def add(self, m: Measurement) -> None:
        """Store one measurement, durably (its own transaction)."""
        self.add_many([m])

    def add_many(self, ms: Iterable[Measurement]) -> None:
        """Store several measurements in one transaction."""
        rows = [self._row(m) for m in ms]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO measurements (backend, device, profile, cell_key, genotype_key, encoding, genotype,"
                " latency_ms, spread_ms, runs_ms, protocol, timestamp) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, *_):
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    # --- reading ----------------------------------------------------------------------
    def keys(self, backend: str, device: str, profile: str) -> set[str]:
        """Canonical keys of the normal cells already measured for this backend/device/profile."""
        cur = self._db.execute(
            "SELECT DISTINCT cell_key FROM measurements WHERE backend=? AND device=? AND profile=?",
            (backend, device, profile),
        )
        return {k for (k,) in cur}

    def count(self, backend: str, device: str, profile: str, unique: bool = True) -> int:
        """Number of (unique) architectures measured for this backend/device/profile."""
        what = "COUNT(DISTINCT cell_key)" if unique else "COUNT(*)"
        cur = self._db.execute(
            f"SELECT {what} FROM measurements WHERE backend=? AND device=? AND profile=?", (backend, device, profile)
        )
        return int(cur.fetchone()[0])

    def summary(self) -> list[dict[str, Any]]:
        """One row per backend/device/profile: measurements, unique architectures, time span."""
        cur = self._db.execute(
            "SELECT backend, device, profile, COUNT(*), COUNT(DISTINCT cell_key), MIN(timestamp), MAX(timestamp),"
            " AVG(latency_ms) FROM measurements GROUP BY backend, device, profile ORDER BY backend, device, profile"
        )
        return [
            {"backend": b, "device": d, "profile": p, "n": n, "n_unique": u, "first": t0, "last": t1,
             "mean_latency_ms": lat}
            for b, d, p, n, u, t0, t1, lat in cur
        ]

    def measurements(
        self, backend: str | None = None, device: str | None = None, profile: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every stored row as a dict (JSON columns decoded), oldest first."""
        where, args = [], []
        for col, val in (("backend", backend), ("device", device), ("profile", profile)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        sql = "SELECT * FROM measurements" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        cur = self._db.execute(sql, args)
        cols = [c[0] for c in cur.description]
        for row in cur:
            rec = dict(zip(cols, row))
            for col in ("genotype", "runs_ms", "protocol"):
                rec[col] = json.loads(rec[col])
            yield rec

    def repeatability(self, backend: str, device: str, profile: str) -> dict[str, Any] | None:
        """How far two measurements of one architecture fall apart: the noise floor a predictor is judged against.

        Over the architectures measured at least twice (`lpm recheck` adds the repeats), the
        relative difference of the first two, |a - b| / mean(a, b), in %: its mean (comparable
        with a predictor's mean relative error: predicting one measurement by the other), median,
        90th percentile and share within 10%, and the Kendall tau between the two measurements (the
        ceiling of a predictor's tau on this data). None when no architecture was measured twice.
        """
        cur = self._db.execute(
            "SELECT cell_key, latency_ms FROM measurements WHERE backend=? AND device=? AND profile=? ORDER BY id",
            (backend, device, profile),
        )
        by_key: dict[str, list[float]] = {}
        for key, lat in cur:
            by_key.setdefault(key, []).append(lat)
        return _repeatability_of(by_key.values())

    def dataset(self, backend: str, device: str, profile: str) -> LatencyDataset:
        """Unique architectures and their latency; repeats of one architecture are combined by median."""
        cur = self._db.execute(
            "SELECT cell_key, genotype, latency_ms, spread_ms FROM measurements"
            " WHERE backend=? AND device=? AND profile=? ORDER BY id",
            (backend, device, profile),
        )
        by_key: dict[str, tuple[list, list[float], list[float]]] = {}
        for key, gjson, lat, spread in cur:
            entry = by_key.setdefault(key, (json.loads(gjson)["normal"], [], []))
            entry[1].append(lat)
            entry[2].append(spread if spread is not None else np.nan)
        keys = list(by_key)
        ops, inputs = cells_to_arrays([by_key[k][0] for k in keys])
        return LatencyDataset(
            ops=ops,
            inputs=inputs,
            keys=keys,
            latency_ms=np.array([np.median(by_key[k][1]) for k in keys], dtype=np.float64),
            spread_ms=np.array([np.median(by_key[k][2]) for k in keys], dtype=np.float64),
            backend=backend,
            device=device,
            profile=profile,
            repeatability=_repeatability_of(by_key[k][1] for k in keys),
        )


def _repeatability_of(latencies: Iterable[list[float]]) -> dict[str, Any] | None:
    """`MeasurementStore.repeatability` from each architecture's latencies in measurement order."""
    pairs = np.array([v[:2] for v in latencies if len(v) >= 2], dtype=np.float64).reshape(-1, 2)
    if not len(pairs):
        return None
    rel = np.abs(pairs[:, 0] - pairs[:, 1]) / pairs.mean(axis=1) * 100
    out = {"n": int(len(rel)), "mean_pct": float(rel.mean()), "median_pct": float(np.median(rel)),
           "p90_pct": float(np.percentile(rel, 90)), "within10_pct": float(100 * np.mean(rel <= 10))}
    if len(rel) >= 3:  # the ranking agreement of two measurements: the ceiling of a predictor's Kendall tau
        from scipy.stats import kendalltau

        out["kendall_tau"] = float(kendalltau(pairs[:, 0], pairs[:, 1]).statistic)
    return out


def load_dataset(db: str | Path, backend: str, device: str, profile: str) -> LatencyDataset:
    """The dataset of one backend/device/profile from a store; a clear error when there is none."""
    path = resolve_db(db)
    hint = f"make it with: lpm profile --backend {backend} --device {device} --profile {profile} --samples N --db {db}"
    if not path.is_file():
        raise LpmError(f"no measurement database at {db}; {hint}")
    with MeasurementStore(path) as store:
        data = store.dataset(backend, device, profile)
        if not len(data):
            have = ", ".join(f"{r['backend']}/{r['device']}/{r['profile']} ({r['n_unique']})" for r in store.summary())
            raise LpmError(
                f"{db} holds no measurements for {backend}/{device}/{profile} (it has: {have or 'nothing'}); {hint}"
            )
    return data
