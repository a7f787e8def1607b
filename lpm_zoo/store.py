"""The measurement store: one SQLite file (WAL) of latency measurements, safe to kill at any time.

Every `add` is its own transaction, so a killed profiler (even `kill -9`) loses at most the
measurement in flight and never corrupts the file. A row holds the genotype, its canonical key
and encoding, where and how it was measured (backend, device, profile, protocol), the kept
statistic with its spread, and the raw per-run times, so a better statistic can be computed
later without measuring again.

A store is data, never trusted: readers open it read-only, refuse a foreign or newer file without
writing to it, and skip (and report by id) rows that fail `validate_row`. Writers store an
architecture's k-th measurement at most once (a unique index), so concurrent profilers never
duplicate rows.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from lpm_zoo.encoding import N_BITS, cells_to_arrays, encode_arrays, genotypes_to_arrays, keys_from_arrays
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import read_regular
from lpm_zoo.paths import cache_dir
from lpm_zoo.profiles import PROFILES, get_profile
from lpm_zoo.space import Genotype
from lpm_zoo.statistics import check_statistic, compare_statistics, is_ratio, latency_of, repeatability

SCHEMA_VERSION = 2  # 2: the `repeat` column and one row per (backend, device, profile, cell_key, repeat)

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS measurements (
    id           INTEGER PRIMARY KEY,
    backend      TEXT NOT NULL,
    device       TEXT NOT NULL,
    profile      TEXT NOT NULL,
    cell_key     TEXT NOT NULL,  -- canonical key of the normal cell (112-bit hex); "normal:reduce" on a -both profile
    genotype_key TEXT NOT NULL,  -- normal and reduction cell keys
    encoding     TEXT NOT NULL,  -- the 112-bit encoding of the normal cell (224: both cells) as '0'/'1'
    genotype     TEXT NOT NULL,  -- JSON (lpm_zoo.space.Genotype.to_dict)
    latency_ms   REAL NOT NULL,  -- the kept statistic (protocol.statistic)
    spread_ms    REAL,           -- its spread (protocol says which)
    runs_ms      TEXT NOT NULL,  -- JSON list of raw per-run times
    protocol     TEXT NOT NULL,  -- JSON: warm-up, repetitions, threads, statistic, versions, device model
    timestamp    REAL NOT NULL,  -- seconds since the epoch
    repeat       INTEGER NOT NULL DEFAULT 0  -- 0: the architecture's first measurement here, 1: its recheck, ...
);
CREATE INDEX IF NOT EXISTS measurements_by_set ON measurements (backend, device, profile, cell_key);
CREATE UNIQUE INDEX IF NOT EXISTS measurements_once ON measurements (backend, device, profile, cell_key, repeat);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '2');
COMMIT;
"""

# version 1 -> 2: number each architecture's measurements in the order they were taken (only where the
# `repeat` column is missing: a store whose schema_version row was deleted already has it), then make them unique
_ADD_REPEAT = (
    "ALTER TABLE measurements ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0",
    ("UPDATE measurements SET repeat = (SELECT COUNT(*) FROM measurements AS o WHERE o.backend = measurements.backend"
     " AND o.device = measurements.device AND o.profile = measurements.profile"
     " AND o.cell_key = measurements.cell_key AND o.id < measurements.id)"),
)
_INDEXES = (  # no-ops where they exist
    "CREATE INDEX IF NOT EXISTS measurements_by_set ON measurements (backend, device, profile, cell_key)",
    "CREATE UNIQUE INDEX IF NOT EXISTS measurements_once ON measurements (backend, device, profile, cell_key, repeat)",
)

_COLUMNS = ("id", "backend", "device", "profile", "cell_key", "genotype_key", "encoding", "genotype", "latency_ms",
            "spread_ms", "runs_ms", "protocol", "timestamp")  # what every reader needs (schema 1 and later)

MAX_PROTOCOL_COUNT = 10_000  # the most warm-up runs, rounds, reps, threads or interleave a stored protocol may ask
MAX_LATENCY_MS = 1e7  # about 3 hours: a larger stored latency is damage, not a measurement
_PROTOCOL_COUNTS = {"warmup": 0, "rounds": 1, "reps": 1, "threads": 1, "interleave": 1}  # field: least value
_PROTOCOL_TIMES = ("reference_ms", "reference_baseline_ms", "ratio", "raw_latency_ms")  # positive when present


class BadRow(ValueError):
    """A stored row that cannot be used; its message says which column is wrong."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _json(rec: dict[str, Any], col: str, kind: type) -> Any:
    text = rec[col]
    if not isinstance(text, str):
        raise BadRow(f"{col} is not JSON text")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadRow(f"{col} is not valid JSON (or holds NaN/Infinity)") from None
    if not isinstance(value, kind):
        raise BadRow(f"{col} is not a JSON {'list' if kind is list else 'object'}")
    return value


def validate_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A stored row with its JSON columns decoded, or `BadRow` saying why it cannot be used.

    Trusted only after these checks: names are short printable text, the latency is finite, positive
    and below MAX_LATENCY_MS, the spread is finite and >= 0 (or missing), the raw runs a JSON list of
    finite times >= 0, the genotype a valid one whose canonical keys and encoding are the row's
    `cell_key`, `genotype_key` and `encoding`, the protocol a JSON object whose warm-up, rounds,
    reps, threads and interleave (when present) are integers within MAX_PROTOCOL_COUNT and whose
    reference times are finite and positive.
    """
    out, genotype = _checked(rec)
    problem = _key_problems([out], [genotype])[0]
    if problem:
        raise BadRow(problem)
    return out


def stored_columns(genotypes: list[Genotype], cells: list[int]) -> list[tuple[str, str, str]]:
    """The (cell_key, genotype_key, encoding) a row of each genotype holds, computed for many rows at once.

    `cells` is 2 for a row of a -both profile (cell_key "normal:reduce", 224-bit encoding), else 1
    (the normal cell's key and 112 bits).
    """
    if not genotypes:
        return []
    ops, inputs = genotypes_to_arrays(genotypes)  # (N, 16): the normal cell, then the reduction cell
    out = []
    for key, bits, c in zip(keys_from_arrays(ops, inputs), encode_arrays(ops, inputs, np.uint8) + ord("0"), cells):
        text = bits.tobytes().decode()  # the 0/1 bits as '0'/'1'
        out.append((key, key, text) if c == 2 else (key.partition(":")[0], key, text[:N_BITS]))
    return out


def _key_problems(recs: list[dict[str, Any]], genotypes: list[Genotype]) -> list[str | None]:
    """For each checked row: why its keys or encoding are not those of its genotype, or None.

    A profile this version does not know is taken to encode as many cells as its cell_key names.
    """

    cells = [PROFILES[r["profile"]].cells if r["profile"] in PROFILES else 1 + (":" in r["cell_key"]) for r in recs]
    out: list[str | None] = []
    for rec, (key, gkey, bits) in zip(recs, stored_columns(genotypes, cells)):
        wrong = [col for col, want in (("cell_key", key), ("genotype_key", gkey), ("encoding", bits)) if rec[col] != want]
        out.append(f"{wrong[0]} is not the canonical one of the row's genotype (an edited row)" if wrong else None)
    return out


def _checked(rec: dict[str, Any]) -> tuple[dict[str, Any], Genotype]:
    """`validate_row` up to the keys: the row with its JSON columns decoded, and its genotype."""
    for col in ("backend", "device", "profile", "cell_key", "genotype_key", "encoding"):
        v = rec.get(col)
        if not isinstance(v, str) or not v or len(v) > (224 if col == "encoding" else 200) or not v.isprintable():
            raise BadRow(f"{col} is not short printable text")
    lat = rec["latency_ms"]
    if not _number(lat) or not 0 < lat <= MAX_LATENCY_MS:
        raise BadRow("latency_ms is not a positive finite number of ms")
    if rec["spread_ms"] is not None and not (_number(rec["spread_ms"]) and rec["spread_ms"] >= 0):
        raise BadRow("spread_ms is not a finite number >= 0")
    if not _number(rec["timestamp"]):
        raise BadRow("timestamp is not a finite number")
    out = dict(rec)
    out["runs_ms"] = runs = _json(rec, "runs_ms", list)
    if not all(_number(t) and t >= 0 for t in runs):
        raise BadRow("runs_ms holds a value that is not a finite time >= 0")
    out["genotype"] = _json(rec, "genotype", dict)
    try:
        genotype = Genotype.from_dict(out["genotype"])
    except (LpmError, TypeError, ValueError, KeyError, IndexError):
        raise BadRow("genotype is not a valid genotype") from None
    out["protocol"] = proto = _json(rec, "protocol", dict)
    for name, least in _PROTOCOL_COUNTS.items():
        v = proto.get(name)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and least <= v <= MAX_PROTOCOL_COUNT):
            raise BadRow(f"protocol {name} is not an integer from {least} to {MAX_PROTOCOL_COUNT}")
    for name in _PROTOCOL_TIMES:
        if name in proto and not (_number(proto[name]) and proto[name] > 0):
            raise BadRow(f"protocol {name} is not a positive finite number")
    if "weights_seed" in proto and not (isinstance(proto["weights_seed"], int) and 0 <= proto["weights_seed"] < 2**32):
        raise BadRow("protocol weights_seed is not an integer seed")
    return out, genotype


def skipped_note(skipped: dict[int, str], limit: int = 10) -> str:
    """One line naming the rows skipped as unusable: how many, their first ids, and why the first was refused."""
    ids = sorted(skipped)
    shown = ", ".join(str(i) for i in ids[:limit]) + (", ..." if len(ids) > limit else "")
    return (f"skipped {len(ids)} bad row{'s' if len(ids) != 1 else ''} (ids {shown}; "
            f"id {ids[0]}: {skipped[ids[0]]})")


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (NaN, Infinity) replaced by None, so JSON output stays standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.floating):
        return json_safe(float(value))
    return value


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
    skipped: dict[int, str] = field(default_factory=dict)  # ids of the store's bad rows left out, with why
    statistic: str | None = None  # the statistic the latencies are (e.g. p10_ratio); "mixed: a, b" if several
    hardware: dict[str, Any] | None = None  # lpm_zoo.hardware fingerprint of the machine that measured them
    measured: np.ndarray | None = None  # (N,) how many measurements each latency is the median of

    def repeated(self, index: np.ndarray) -> int:
        """How many of the architectures at `index` have a label that is the median of two or more measurements."""
        return 0 if self.measured is None else int(np.sum(self.measured[index] >= 2))

    def held_out_note(self, index: np.ndarray) -> str:
        """`repeated` of a held-out set, as a sentence for reports."""
        n, twice = len(index), self.repeated(index)
        return (f"{twice} of {n} labels are the median of two or more measurements (lpm recheck --held-out {n})"
                if twice else f"labels measured once each (lpm recheck --held-out {n} measures them again)")

    def __len__(self) -> int:
        return len(self.keys)

    def genotypes(self) -> list[Genotype]:
        """The measured genotypes (normal cells with the profile's reduction cell)."""

        prof = get_profile(self.profile)
        return [prof.from_arrays(o, i) for o, i in zip(self.ops, self.inputs)]


BUNDLED_PREFIX = "bundled:"


def list_bundled() -> list[str]:
    """Names of the measurement stores shipped inside the package (`bundled:NAME` opens one)."""

    folder = resources.files("lpm_zoo").joinpath("data/measurements")
    return sorted(f.name[: -len(".db.gz")] for f in folder.iterdir() if f.name.endswith(".db.gz"))


def bundled_name(spec: str | Path) -> str | None:
    """The name of the shipped store `spec` means (`bundled:NAME`, or the path of its unpacked copy), else None."""
    text = str(spec)
    if text.startswith(BUNDLED_PREFIX):
        return text[len(BUNDLED_PREFIX):]
    path = Path(text).expanduser()
    if path.suffix != ".db" or path.stem not in list_bundled():
        return None
    try:
        return path.stem if path.resolve().parent == (cache_dir() / "data").resolve() else None
    except OSError:  # a link loop: not the cache's file
        return None


def _bundled_target(name: str) -> Path:
    """Where the shipped store `name` is unpacked (without unpacking it); an unknown name is an LpmError."""
    if name not in list_bundled():
        raise LpmError(f"no bundled measurements {clip(name)}; bundled: {', '.join(list_bundled()) or 'none'}")
    return cache_dir() / "data" / f"{name}.db"


def resolve_db(spec: str | Path) -> Path:
    """A store path; `bundled:NAME` is a shipped store, unpacked once into the user's cache."""
    text = str(spec)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(spec)

    name = text[len(BUNDLED_PREFIX):]
    target = _bundled_target(name)
    source = resources.files("lpm_zoo").joinpath(f"data/measurements/{name}.db.gz")
    stamp = target.with_suffix(".size")
    size = str(source.stat().st_size) if hasattr(source, "stat") else ""
    try:
        fresh = target.is_file() and read_regular(stamp, 64).decode(errors="replace") == size
    except (OSError, LpmError):  # no stamp, or something else in its place: unpack again
        fresh = False
    if not fresh:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with source.open("rb") as raw, gzip.open(raw) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)  # atomic: an interrupted unpack never leaves a torn store
        tmp.write_text(size)
        os.replace(tmp, stamp)  # replaces whatever was there (never writes into a FIFO)
    return target


def _ro_uri(path: Path, immutable: bool = False) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")


class MeasurementStore:
    """A SQLite measurement file in WAL mode; created on first use (`bundled:NAME` opens a shipped one, read-only).

    `readonly=True` opens it with `mode=ro` and writes nothing (a write-protected file reads
    fine). Either way a file that is not an lpm store, or one of a newer schema, is refused
    before anything is written to it; an older schema is migrated when opened for writing.
    A shipped store is never opened for writing. Rows that fail `validate_row`, and a second row of
    one architecture's same measurement, are skipped by every reader and collected in `skipped` (id: why).
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        bundled = bundled_name(path)
        if bundled is not None and not readonly:  # refused before anything is unpacked, opened or migrated
            raise LpmError(f"{clip(str(path))} is a store shipped with the package and is only ever read; to write "
                           f"measurements give --db a file of your own (a new path, or a copy: cp "
                           f"{_bundled_target(bundled)} my.db)")
        self.path = resolve_db(path)
        self.readonly = readonly
        self._immutable = bundled is not None  # package data: read with immutable=1, not even a -wal or -shm file
        self.skipped: dict[int, str] = {}
        if self.path.is_dir():
            raise LpmError(f"{self.path} is a directory; give the path of a database file, e.g. {self.path}/lpm.db")
        if readonly and not self.path.is_file():
            raise LpmError(f"no measurement database at {self.path}")
        try:
            version = self._inspect_readonly() if self.path.is_file() and self.path.stat().st_size else None
            if readonly:
                if version is None:
                    raise LpmError(f"{self.path} is an empty database, not an lpm measurement store")
                self._db = self._connect_readonly()
                self.version = version
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
            if version is None:  # a new (or empty) file
                self._db.executescript(_SCHEMA)
            self.version = self._migrate()
        except sqlite3.DatabaseError as e:
            raise LpmError(f"{self.path} is not a usable lpm measurement database ({e})") from None
        except OSError as e:
            raise LpmError(f"cannot open {self.path}: {e.strerror or e}") from None

    def _connect_readonly(self) -> sqlite3.Connection:
        """A `mode=ro` connection; `immutable` where a write-protected folder leaves no room for the WAL index."""
        if self._immutable:
            return sqlite3.connect(_ro_uri(self.path, immutable=True), uri=True, isolation_level=None)
        db = sqlite3.connect(_ro_uri(self.path), uri=True, timeout=60.0, isolation_level=None)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if Path(f"{self.path}-wal").exists():  # a writer's log would be ignored by immutable: refuse instead
                raise
        return sqlite3.connect(_ro_uri(self.path, immutable=True), uri=True, isolation_level=None)

    def _inspect_readonly(self) -> int | None:
        """The schema version of the existing file, read without writing; None for an empty database."""
        db = self._connect_readonly()
        try:
            return _schema_version(db, self.path)
        finally:
            db.close()

    def _migrate(self) -> int:
        """Bring an older store up to SCHEMA_VERSION (one transaction, safe against a concurrent opener).

        Idempotent: each step looks at what the file has (the `repeat` column, the indexes), so a store
        whose schema_version row was deleted is repaired, not migrated twice. A store holding two rows of
        one architecture's same measurement (its unique index dropped) is refused: nothing is written.
        """
        with self._transaction():
            version = _schema_version(self._db, self.path)
            if "repeat" not in _table_columns(self._db):
                for sql in _ADD_REPEAT:
                    self._db.execute(sql)
            try:
                for sql in _INDEXES:
                    self._db.execute(sql)
            except sqlite3.IntegrityError:
                raise LpmError(f"{self.path} holds two rows of one architecture's same measurement (its unique index "
                               "was dropped); readers skip the second, but nothing is written to it: give --db a new "
                               "file") from None
            if version != SCHEMA_VERSION:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
        return SCHEMA_VERSION

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------
    @staticmethod
    def _row(m: Measurement) -> tuple:
        # what the profile encodes: the normal cell, or both cells on a -both profile
        key, gkey, bits = stored_columns([m.genotype], [_cells_of(m.profile)])[0]
        ok = (_number(m.latency_ms) and 0 < m.latency_ms <= MAX_LATENCY_MS and _number(m.spread_ms)
              and m.spread_ms >= 0 and all(_number(t) and t >= 0 for t in m.runs_ms))
        try:
            protocol = json.dumps(m.protocol, sort_keys=True, allow_nan=False)
        except ValueError:
            ok = False
        if not ok:
            raise LpmError(f"refusing to store a measurement of {key} with a latency, spread or run time that is "
                           f"not a finite positive number (latency {m.latency_ms!r}); the earlier ones are stored")
        return (
            m.backend, m.device, m.profile, key, gkey, bits,
            m.genotype.to_json(), float(m.latency_ms), float(m.spread_ms),
            json.dumps([round(float(t), 6) for t in m.runs_ms]), protocol, float(m.timestamp),
        )

    def add(self, m: Measurement) -> None:
        """Store one measurement, durably (its own transaction)."""
        self.add_many([m])

    def add_many(self, ms: Iterable[Measurement], repeat: int | None = None) -> int:
        """Store several measurements in one transaction; returns how many were stored.

        By default each is stored as the next measurement of its architecture. With `repeat=k`
        one is stored only as its architecture's k-th (0: the first), and skipped when the store
        already holds that one: two profilers filling one store never store an architecture twice.
        """
        if self.readonly:
            raise LpmError(f"{self.path} was opened read-only")
        rows = [self._row(m) for m in ms]
        stored = 0
        with self._transaction():
            for row in rows:
                k = repeat
                if k is None:
                    (k,) = self._db.execute(
                        "SELECT COALESCE(MAX(repeat) + 1, 0) FROM measurements"
                        " WHERE backend=? AND device=? AND profile=? AND cell_key=?", row[:4]).fetchone()
                stored += self._db.execute(
                    "INSERT OR IGNORE INTO measurements (backend, device, profile, cell_key, genotype_key, encoding,"
                    " genotype, latency_ms, spread_ms, runs_ms, protocol, timestamp, repeat)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (*row, k)).rowcount
        return stored

    def meta(self, key: str) -> str | None:
        """A value of the store's `meta` table (None when absent)."""
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta_once(self, key: str, value: str) -> str:
        """Write a `meta` value unless one is there already; returns the stored one (another writer's if it won)."""
        if self.readonly:
            raise LpmError(f"{self.path} was opened read-only")
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return str(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (the write lock is taken at once)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- reading ----------------------------------------------------------------------
    def keys(self, backend: str, device: str, profile: str) -> set[str]:
        """Canonical keys of the normal cells already measured for this backend/device/profile (any row)."""
        cur = self._db.execute(
            "SELECT DISTINCT cell_key FROM measurements WHERE backend=? AND device=? AND profile=?",
            (backend, device, profile),
        )
        return {k for (k,) in cur}

    def count(self, backend: str, device: str, profile: str, unique: bool = True) -> int:
        """Number of (unique) architectures measured for this backend/device/profile (any row)."""
        what = "COUNT(DISTINCT cell_key)" if unique else "COUNT(*)"
        cur = self._db.execute(
            f"SELECT {what} FROM measurements WHERE backend=? AND device=? AND profile=?", (backend, device, profile)
        )
        return int(cur.fetchone()[0])

    def counts(self, backend: str, device: str, profile: str) -> dict[str, int]:
        """How many rows (good or bad) each architecture of this backend/device/profile has."""
        cur = self._db.execute("SELECT cell_key, COUNT(*) FROM measurements WHERE backend=? AND device=? AND profile=?"
                               " GROUP BY cell_key", (backend, device, profile))
        return {k: int(n) for k, n in cur}

    def devices(self, backend: str, profile: str) -> dict[str, dict[str, Any] | None]:
        """The device names this backend/profile's rows are filed under, each with its first row's hardware.

        What lets a store written under one name (`cpu`, before names were hardware slugs) be
        resumed under that name on the same machine, and a reader pick a store's only device.
        """
        cur = self._db.execute(
            "SELECT device, protocol FROM measurements WHERE id IN (SELECT MIN(id) FROM measurements "
            "WHERE backend=? AND profile=? GROUP BY device) ORDER BY device", (backend, profile))
        out: dict[str, dict[str, Any] | None] = {}
        for device, proto in cur:
            try:
                out[str(device)] = _hardware_of(_json({"protocol": proto}, "protocol", dict))
            except BadRow:  # a damaged first row: the name is still there, its hardware unknown
                out[str(device)] = None
        return out

    def summary(self, repeatability: bool = False) -> list[dict[str, Any]]:
        """One row per backend/device/profile over the good rows: measurements, unique architectures, time span.

        With `repeatability`, each row also has the group's `repeatability` (see that method).
        """
        groups: dict[tuple[str, str, str], dict[str, list[float]]] = {}
        stamps: dict[tuple[str, str, str], list[float]] = {}
        for r in self.measurements():
            g = (r["backend"], r["device"], r["profile"])
            groups.setdefault(g, {}).setdefault(r["cell_key"], []).append(float(r["latency_ms"]))
            stamps.setdefault(g, []).append(float(r["timestamp"]))
        out = []
        for (b, d, p), by_key in sorted(groups.items()):
            lat = [v for vs in by_key.values() for v in vs]
            row = {"backend": b, "device": d, "profile": p, "n": len(lat), "n_unique": len(by_key),
                   "first": min(stamps[b, d, p]), "last": max(stamps[b, d, p]),
                   "mean_latency_ms": float(np.mean(lat))}
            if repeatability:
                row["repeatability"] = _repeatability_of(by_key.values())
            out.append(row)
        return out

    def measurements(
        self, backend: str | None = None, device: str | None = None, profile: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every good row as a dict (JSON columns decoded), oldest first; bad rows go to `skipped`."""
        where, args = [], []
        for col, val in (("backend", backend), ("device", device), ("profile", profile)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        cols = _COLUMNS + (("repeat",) if "repeat" in _table_columns(self._db) else ())  # schema 1 has no repeat
        sql = (f"SELECT {', '.join(cols)} FROM measurements" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id")
        first: dict[tuple, int] = {}  # (backend, device, profile, cell_key, repeat) -> the id of its good row
        cur = self._db.execute(sql, args)
        while rows := cur.fetchmany(1024):  # the keys are checked a chunk at a time (vectorised)
            recs, genotypes = [], []
            for row in rows:
                rec = dict(zip(cols, row))
                try:
                    out, g = _checked(rec)
                except BadRow as e:
                    self.skipped[rec["id"]] = str(e)
                    continue
                recs.append(out)
                genotypes.append(g)
            for rec, problem in zip(recs, _key_problems(recs, genotypes)):
                repeat = rec.pop("repeat", None)
                if problem is None and "repeat" in cols:
                    seen = first.setdefault((*(rec[c] for c in ("backend", "device", "profile", "cell_key")),
                                             repeat), rec["id"])
                    if seen != rec["id"]:
                        problem = f"a second copy of measurement {clip(repeat, 20)} of row {seen}'s architecture"
                if problem is None:
                    yield rec
                else:
                    self.skipped[rec["id"]] = problem

    def repeatability(self, backend: str, device: str, profile: str) -> dict[str, Any] | None:
        """How far two measurements of one architecture fall apart: the noise floor a predictor is judged against.

        Over the architectures measured at least twice (`lpm recheck` adds the repeats), the
        relative difference of the first two, |a - b| / mean(a, b), in %: its mean (comparable
        with a predictor's mean relative error: predicting one measurement by the other), median,
        90th percentile and share within 10%, and the Kendall tau between the two measurements (the
        ceiling of a predictor's tau on this data). None when no architecture was measured twice.
        """
        by_key: dict[str, list[float]] = {}
        for r in self.measurements(backend, device, profile):
            by_key.setdefault(r["cell_key"], []).append(float(r["latency_ms"]))
        return _repeatability_of(by_key.values())

    def dataset(self, backend: str, device: str, profile: str) -> LatencyDataset:
        """Unique architectures and their latency; repeats of one architecture are combined by median."""
        by_key: dict[str, tuple[Any, list[float], list[float]]] = {}
        both = _cells_of(profile) == 2
        stats: set[str] = set()
        hardware: dict[str, Any] | None = None
        for r in self.measurements(backend, device, profile):
            stats.add(str(r["protocol"].get("statistic")))
            hardware = hardware or _hardware_of(r["protocol"])
            entry = by_key.setdefault(r["cell_key"], (r["genotype"] if both else r["genotype"]["normal"], [], []))
            entry[1].append(float(r["latency_ms"]))
            entry[2].append(float(r["spread_ms"]) if r["spread_ms"] is not None else np.nan)
        keys = list(by_key)
        if both:  # whole genotypes: (N, 16) arrays, normal cell then reduction cell

            ops, inputs = get_profile(profile).arrays([Genotype.from_dict(by_key[k][0]) for k in keys])
        else:
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
            skipped=dict(self.skipped),
            statistic=_one_statistic(stats),
            hardware=hardware,
            measured=np.array([len(by_key[k][1]) for k in keys], dtype=np.int64),
        )


    def pairs(self, backend: str, device: str, profile: str, later: int = 1) -> list[tuple[dict, dict]]:
        """(first, later-th) good measurements of architectures measured more than `later` times (raw runs too)."""
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in self.measurements(backend, device, profile):
            by_key.setdefault(r["cell_key"], []).append(r)
        return [(v[0], v[later]) for v in by_key.values() if len(v) > later]

    def pass_report(self, backend: str, device: str, profile: str, later: int = 1) -> dict[str, Any] | None:
        """How the first and the `later`-th measurements agree: kept latencies, every statistic, hours apart.

        `kept` is the repeatability of the stored latencies; `by_statistic` ranks every statistic
        recomputed from the same raw runs (best first), so a store can see which one it should keep.
        """

        pairs = self.pairs(backend, device, profile, later)
        if not pairs:
            return None
        gaps = [(b["timestamp"] - a["timestamp"]) / 3600 for a, b in pairs]
        raw = [tuple({"runs_ms": r["runs_ms"], "rounds": r["protocol"].get("rounds", 1),
                      "reference_runs_ms": r["protocol"].get("reference_runs_ms")} for r in pair) for pair in pairs]
        ranked = compare_statistics(raw)
        return {"pass": later, "n": len(pairs), "hours_apart_median": float(np.median(gaps)),
                "hours_apart_min": float(np.min(gaps)),
                "statistic": pairs[0][0]["protocol"].get("statistic"),
                "kept": repeatability([a["latency_ms"] for a, _ in pairs], [b["latency_ms"] for _, b in pairs]),
                "by_statistic": ranked, "best": ranked[0]["statistic"] if ranked else None}

    def baseline(self, backend: str, device: str, profile: str) -> float | None:
        """The reference latency (ms) ratio latencies of backend/device/profile are scaled to; None if none yet.

        It is the `meta` entry (one per backend/device/profile, written once by the first group);
        stores written before that have it only in their rows' protocol.
        """
        where = f"{self.path} {backend}/{device}/{profile}"
        value = self.meta(baseline_key(backend, device, profile))
        if value is not None:
            return checked_baseline(value, where)
        for rec in self.measurements(backend=backend, device=device, profile=profile):
            base = rec["protocol"].get("reference_baseline_ms")  # validated: finite and positive when present
            if base:
                return checked_baseline(base, where)
        return None

    def restat(self, statistic: str, backend: str, device: str, profile: str) -> int:
        """Re-express every stored latency of backend/device/profile with `statistic`, from its raw runs.

        One transaction: every row is converted or none is (a row that lacks what the statistic
        needs is an LpmError naming it). Each row keeps its previous latency and statistic under
        `protocol.restat` (provenance); the store records the statistic in force. Returns the rows changed.
        """
        check_statistic(statistic)
        if self.readonly:
            raise LpmError(f"{self.path} was opened read-only")
        baseline_ms = self.baseline(backend, device, profile)
        if baseline_ms is None and is_ratio(statistic):  # a store kept in absolute ms: its first reference time
            first = next((r for r in self.measurements(backend, device, profile)
                          if r["protocol"].get("reference_ms")), None)
            baseline_ms = float(first["protocol"]["reference_ms"]) if first else None
        updates = []
        for r in self.measurements(backend, device, profile):
            proto = r["protocol"]
            if proto.get("statistic") == statistic:
                continue
            try:
                latency, ratio = latency_of(r["runs_ms"], proto, statistic,
                                            proto.get("reference_baseline_ms", baseline_ms))
            except LpmError as e:
                raise LpmError(f"row {r['id']} cannot be re-expressed as {statistic} ({e}); the store is unchanged"
                               ) from None
            history = list(proto.get("restat") or [])[-20:]
            history.append({"statistic": proto.get("statistic"), "latency_ms": r["latency_ms"], "at": time.time()})
            new = {**proto, "statistic": statistic, "restat": history}
            new.pop("ratio", None)
            if ratio is not None:
                new.update(ratio=ratio, reference_baseline_ms=proto.get("reference_baseline_ms", baseline_ms))
            updates.append((float(latency), json.dumps(new, sort_keys=True, allow_nan=False), r["id"]))
        if self.skipped:
            raise LpmError(f"{skipped_note(self.skipped)}; restat needs every row readable: the store is unchanged")
        with self._transaction():
            if baseline_ms is not None and is_ratio(statistic):
                self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                                 (baseline_key(backend, device, profile), repr(float(baseline_ms))))
            self._db.executemany("UPDATE measurements SET latency_ms=?, protocol=? WHERE id=?", updates)
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (statistic_key(backend, device, profile), statistic))
        return len(updates)


def _hardware_of(protocol: dict[str, Any]) -> dict[str, Any] | None:
    """A row's hardware fingerprint; rows written before fingerprints have the CPU or GPU model string only."""
    hw = protocol.get("hardware")
    if isinstance(hw, dict) and isinstance(hw.get("model"), str):
        return hw
    model = protocol.get("device_model") or protocol.get("cpu_model")
    if not isinstance(model, str):
        return None
    kind = "cuda" if str(protocol.get("device", "cpu")).startswith("cuda") else "cpu"
    return {"kind": kind, "model": model[:200]}


def _one_statistic(stats: set[str]) -> str | None:
    """The statistic of a set of rows: the one they share, "mixed: a, b" when several, None when no rows."""
    if not stats:
        return None
    return next(iter(stats)) if len(stats) == 1 else f"mixed: {', '.join(sorted(stats))}"


def baseline_key(backend: str, device: str, profile: str) -> str:
    """The `meta` key of the reference baseline (ms) a store's ratio latencies are expressed in."""
    return f"baseline_ms/{backend}/{device}/{profile}"


def checked_baseline(value: Any, where: str) -> float:
    """A baseline as a float; a non-finite or non-positive one (a damaged store) is an LpmError."""
    try:
        base = float(value)
    except (TypeError, ValueError):
        base = math.nan
    if not (math.isfinite(base) and base > 0):
        raise LpmError(f"the reference baseline of {where} is {str(value)[:40]!r}, not a positive number of ms; "
                       f"the store is damaged: fill a new one with `lpm profile`")
    return base


def statistic_key(backend: str, device: str, profile: str) -> str:
    """The `meta` key of the statistic a store's backend/device/profile is summarised with."""
    return f"statistic/{backend}/{device}/{profile}"


_REQUIRED_COLUMNS = set(_COLUMNS)


def _table_columns(db: sqlite3.Connection) -> set[str]:
    """The column names of a store's measurements table."""
    return {row[1] for row in db.execute("PRAGMA table_info(measurements)")}


def _cells_of(profile: str) -> int:
    """Cells a profile encodes (2 for the "-both" profiles); 1 for names this version does not know."""

    p = PROFILES.get(profile)
    return p.cells if p is not None else 1


def _schema_version(db: sqlite3.Connection, path: Path) -> int | None:
    """The schema version of an lpm store (None: an empty database); a foreign or newer file is an LpmError."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if not {"measurements", "meta"} <= tables:
        raise LpmError(f"{path} is an SQLite database but not an lpm measurement store (no measurements/meta "
                       f"tables); it was left untouched: give another --db path")
    missing = _REQUIRED_COLUMNS - _table_columns(db)
    if missing:
        raise LpmError(f"{path} is not an lpm measurement store (its measurements table lacks "
                       f"{', '.join(sorted(missing))}); it was left untouched")
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        raise LpmError(f"{path} is not an lpm measurement store (its meta table has no key/value columns)") from None
    text = "1" if row is None else str(row[0])
    if not text.isdigit() or int(text) < 1:
        raise LpmError(f"{path} has an invalid schema_version {text[:40]!r}; it is not a store lpm-zoo wrote")
    if int(text) > SCHEMA_VERSION:
        raise LpmError(f"{path} was written by a newer lpm-zoo (schema {int(text)}; this one reads up to "
                       f"{SCHEMA_VERSION}): upgrade lpm-zoo to read it")
    return int(text)


def _repeatability_of(latencies: Iterable[list[float]]) -> dict[str, Any] | None:
    """`MeasurementStore.repeatability` from each architecture's latencies in measurement order."""
    pairs = [v[:2] for v in latencies if len(v) >= 2]
    return repeatability([p[0] for p in pairs], [p[1] for p in pairs])


def load_dataset(db: str | Path, backend: str, device: str, profile: str) -> LatencyDataset:
    """The dataset of one backend/device/profile from a store; a clear error when there is none."""
    path = resolve_db(db)
    hint = f"make it with: lpm profile --backend {backend} --device {device} --profile {profile} --samples N --db {db}"
    if not path.is_file():
        raise LpmError(f"no measurement database at {db}; {hint}")
    with MeasurementStore(path, readonly=True) as store:
        data = store.dataset(backend, device, profile)
        if not len(data):
            have = ", ".join(f"{r['backend']}/{r['device']}/{r['profile']} ({r['n_unique']})" for r in store.summary())
            bad = f"; {skipped_note(store.skipped)}" if store.skipped else ""
            raise LpmError(
                f"{db} holds no usable measurements for {backend}/{device}/{profile} (it has: {have or 'nothing'}"
                f"{bad}); {hint}"
            )
    return data
