"""The measurement store (`MeasurementStore`): one SQLite file (WAL) of latency measurements, safe to kill at any time.

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
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lpm_zoo.encoding import cells_to_arrays
from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.files import read_regular
from lpm_zoo.hardware import is_stated
from lpm_zoo.profiles import cells_of, get_profile
from lpm_zoo.space import Genotype
from lpm_zoo.statistics import check_statistic, is_ratio, latency_of
from lpm_zoo.store.bundled import bundled_name, bundled_target, resolve_db
from lpm_zoo.store.records import (
    LatencyDataset,
    Measurement,
    RuntimeTally,
    hardware_of,
    one_statistic,
    repeatability_of,
)
from lpm_zoo.store.rows import (
    MAX_LATENCY_MS,
    BadRow,
    checked_row,
    is_number,
    json_column,
    key_problems,
    skipped_note,
    stored_columns,
)
from lpm_zoo.store.schema import (
    ADD_REPEAT,
    COLUMNS,
    INDEXES,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    ro_uri,
    schema_version,
    table_columns,
)
from lpm_zoo.store.target import Target, baseline_key, checked_baseline, statistic_key

GZIP_MAGIC = b"\x1f\x8b"


def refuse_compressed(path: Path) -> None:
    """A gzip-compressed store (a copy of a shipped `.db.gz`) refused with how to unpack it, not 'not a database'."""
    try:
        head = read_regular(path, 1)[:2] if path.is_file() else b""
    except (OSError, LpmError):  # unreadable or not a regular file: the open below says so
        return
    if head == GZIP_MAGIC:
        gz = path.name.endswith(".gz")
        plain = path.with_name(path.name[:-3] if gz else f"{path.stem}-unpacked.db")
        unpack = f"gunzip -k {path}" if gz else f"gunzip -c {path} > {plain}"
        raise LpmError(f"{printable(path, 200)} is gzip-compressed, not an SQLite store; unpack it first: "
                       f"{printable(unpack, 400)}, then give --db {printable(plain, 200)}")


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
                           f"{bundled_target(bundled)} my.db)")
        self.path = resolve_db(path)
        self.readonly = readonly
        self._immutable = bundled is not None  # package data: read with immutable=1, not even a -wal or -shm file
        self.skipped: dict[int, str] = {}
        if self.path.is_dir():
            raise LpmError(f"{self.path} is a directory; give the path of a database file, e.g. {self.path}/lpm.db")
        if readonly and not self.path.is_file():
            raise LpmError(f"no measurement database at {self.path}")
        refuse_compressed(self.path)
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
                self._db.executescript(SCHEMA_SQL)
            self.version = self._migrate()
        except sqlite3.DatabaseError as e:
            raise LpmError(f"{self.path} is not a usable lpm measurement database ({e})") from None
        except OSError as e:
            raise LpmError(f"cannot open {self.path}: {e.strerror or e}") from None

    def _connect_readonly(self) -> sqlite3.Connection:
        """A `mode=ro` connection; `immutable` where a write-protected folder leaves no room for the WAL index."""
        if self._immutable:
            return sqlite3.connect(ro_uri(self.path, immutable=True), uri=True, isolation_level=None)
        db = sqlite3.connect(ro_uri(self.path), uri=True, timeout=60.0, isolation_level=None)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if Path(f"{self.path}-wal").exists():  # a writer's log would be ignored by immutable: refuse instead
                raise
        return sqlite3.connect(ro_uri(self.path, immutable=True), uri=True, isolation_level=None)

    def _inspect_readonly(self) -> int | None:
        """The schema version of the existing file, read without writing; None for an empty database."""
        db = self._connect_readonly()
        try:
            return schema_version(db, self.path)
        finally:
            db.close()

    def _migrate(self) -> int:
        """Bring an older store up to SCHEMA_VERSION (one transaction, safe against a concurrent opener).

        Idempotent: each step looks at what the file has (the `repeat` column, the indexes), so a store
        whose schema_version row was deleted is repaired, not migrated twice. A store holding two rows of
        one architecture's same measurement (its unique index dropped) is refused: nothing is written.
        """
        with self._transaction():
            version = schema_version(self._db, self.path)
            if "repeat" not in table_columns(self._db):
                for sql in ADD_REPEAT:
                    self._db.execute(sql)
            try:
                for sql in INDEXES:
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
        key, gkey, bits = stored_columns([m.genotype], [cells_of(m.profile)])[0]
        ok = (is_number(m.latency_ms) and 0 < m.latency_ms <= MAX_LATENCY_MS and is_number(m.spread_ms)
              and m.spread_ms >= 0 and all(is_number(t) and t >= 0 for t in m.runs_ms))
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
    def keys(self, target: Target) -> set[str]:
        """Canonical keys of the normal cells already measured for this backend/device/profile (any row)."""
        backend, device, profile = target
        cur = self._db.execute(
            "SELECT DISTINCT cell_key FROM measurements WHERE backend=? AND device=? AND profile=?",
            (backend, device, profile),
        )
        return {k for (k,) in cur}

    def count(self, target: Target, unique: bool = True) -> int:
        """Number of (unique) architectures measured for this backend/device/profile (any row)."""
        backend, device, profile = target
        what = "COUNT(DISTINCT cell_key)" if unique else "COUNT(*)"
        cur = self._db.execute(
            f"SELECT {what} FROM measurements WHERE backend=? AND device=? AND profile=?", (backend, device, profile)
        )
        return int(cur.fetchone()[0])

    def counts(self, target: Target) -> dict[str, int]:
        """How many rows (good or bad) each architecture of this backend/device/profile has."""
        backend, device, profile = target
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
                out[str(device)] = hardware_of(json_column({"protocol": proto}, "protocol", dict))
            except BadRow:  # a damaged first row: the name is still there, its hardware unknown
                out[str(device)] = None
        return out

    def series_options(self, target: Target) -> dict[str, Any] | None:
        """The backend options (`--backend-option`) backend/device/profile's first row was measured with ({}: the
        defaults; a value that is not an object is kept under "unreadable"); None when the series has no row."""
        backend, device, profile = target
        row = self._db.execute("SELECT protocol FROM measurements WHERE backend=? AND device=? AND profile=? "
                               "ORDER BY id LIMIT 1", (backend, device, profile)).fetchone()
        if row is None:
            return None
        try:
            options = json_column({"protocol": row[0]}, "protocol", dict).get("backend_options", {})
        except BadRow:
            return {"unreadable": "protocol"}
        return options if isinstance(options, dict) else {"unreadable": clip(options, 40)}

    def recorded_hardware(self) -> list[dict[str, Any] | None]:
        """Every fingerprint the store records, over all its backend/device/profile series: each `hardware/...`
        meta value (None when unreadable) and each series' first row's hardware."""
        out: list[dict[str, Any] | None] = []
        for (value,) in self._db.execute("SELECT value FROM meta WHERE key LIKE 'hardware/%' LIMIT 10000"):
            try:
                hw = json.loads(str(value)[:100_000])
            except ValueError:
                hw = None
            out.append(hw if isinstance(hw, dict) else None)
        cur = self._db.execute("SELECT protocol FROM measurements WHERE id IN (SELECT MIN(id) FROM measurements "
                               "GROUP BY backend, device, profile)")
        for (proto,) in cur:
            try:
                out.append(hardware_of(json_column({"protocol": proto}, "protocol", dict)))
            except BadRow:
                out.append(None)
        return out

    def summary(self, repeatability: bool = False) -> list[dict[str, Any]]:
        """One row per backend/device/profile over the good rows: measurements, unique architectures, time span.

        With `repeatability`, each row also has the group's `repeatability` (see that method).
        """
        groups: dict[tuple[str, str, str], dict[str, list[float]]] = {}
        stamps: dict[tuple[str, str, str], list[float]] = {}
        stated: dict[tuple[str, str, str], int] = {}
        for r in self.measurements():
            g = (r["backend"], r["device"], r["profile"])
            stated[g] = stated.get(g, 0) + is_stated(r["protocol"].get("hardware"))
            groups.setdefault(g, {}).setdefault(r["cell_key"], []).append(float(r["latency_ms"]))
            stamps.setdefault(g, []).append(float(r["timestamp"]))
        out = []
        for (b, d, p), by_key in sorted(groups.items()):
            lat = [v for vs in by_key.values() for v in vs]
            row = {"backend": b, "device": d, "profile": p, "n": len(lat), "n_unique": len(by_key),
                   "first": min(stamps[b, d, p]), "last": max(stamps[b, d, p]),
                   "mean_latency_ms": float(np.mean(lat)), "stated": stated[b, d, p]}
            if repeatability:
                row["repeatability"] = repeatability_of(by_key.values())
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
        cols = COLUMNS + (("repeat",) if "repeat" in table_columns(self._db) else ())  # schema 1 has no repeat
        sql = (f"SELECT {', '.join(cols)} FROM measurements" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id")
        first: dict[tuple, int] = {}  # (backend, device, profile, cell_key, repeat) -> the id of its good row
        cur = self._db.execute(sql, args)
        while rows := cur.fetchmany(1024):  # the keys are checked a chunk at a time (vectorised)
            recs, genotypes = [], []
            for row in rows:
                rec = dict(zip(cols, row))
                try:
                    out, g = checked_row(rec)
                except BadRow as e:
                    self.skipped[rec["id"]] = str(e)
                    continue
                recs.append(out)
                genotypes.append(g)
            for rec, problem in zip(recs, key_problems(recs, genotypes)):
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

    def dataset(self, target: Target) -> LatencyDataset:
        """Unique architectures and their latency; repeats of one architecture are combined by median."""
        backend, device, profile = target
        by_key: dict[str, tuple[Any, list[float], list[float]]] = {}
        both = cells_of(profile) == 2
        stats: set[str] = set()
        hardware: dict[str, Any] | None = None
        runtime = RuntimeTally()
        stated = 0
        for r in self.measurements(backend, device, profile):
            stats.add(str(r["protocol"].get("statistic")))
            runtime.add(r["protocol"])
            hardware = hardware or hardware_of(r["protocol"])
            stated += is_stated(r["protocol"].get("hardware"))
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
            repeatability=repeatability_of(by_key[k][1] for k in keys),
            skipped=dict(self.skipped),
            statistic=one_statistic(stats),
            hardware=hardware,
            measured=np.array([len(by_key[k][1]) for k in keys], dtype=np.int64),
            runtime=runtime.agreed(),
            runtime_mixed=runtime.mixed(),
            stated=stated,
        )


    def baseline(self, target: Target) -> float | None:
        """The reference latency (ms) ratio latencies of backend/device/profile are scaled to; None if none yet.

        It is the `meta` entry (one per backend/device/profile, written once by the first group);
        stores written before that have it only in their rows' protocol.
        """
        backend, device, profile = target
        where = f"{self.path} {backend}/{device}/{profile}"
        value = self.meta(baseline_key(target))
        if value is not None:
            return checked_baseline(value, where)
        for rec in self.measurements(backend=backend, device=device, profile=profile):
            base = rec["protocol"].get("reference_baseline_ms")  # validated: finite and positive when present
            if base:
                return checked_baseline(base, where)
        return None

    def restat(self, statistic: str, target: Target) -> int:
        """Re-express every stored latency of backend/device/profile with `statistic`, from its raw runs.

        One transaction: every row is converted or none is (a row that lacks what the statistic
        needs is an LpmError naming it). Each row keeps its previous latency and statistic under
        `protocol.restat` (provenance); the store records the statistic in force. Returns the rows changed.
        """
        backend, device, profile = target
        check_statistic(statistic)
        if self.readonly:
            raise LpmError(f"{self.path} was opened read-only")
        baseline_ms = self.baseline(target)
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
                                 (baseline_key(target), repr(float(baseline_ms))))
            self._db.executemany("UPDATE measurements SET latency_ms=?, protocol=? WHERE id=?", updates)
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (statistic_key(target), statistic))
        return len(updates)


def load_dataset(db: str | Path, target: Target) -> LatencyDataset:
    """The dataset of one backend/device/profile from a store; a clear error when there is none."""
    backend, device, profile = target
    path = resolve_db(db)
    hint = (f"make it with: lpm profile --backend {backend} --device-name {device} --profile {profile} --samples N "
            f"--db {db}")
    if not path.is_file():
        raise LpmError(f"no measurement database at {db}; {hint}")
    with MeasurementStore(path, readonly=True) as store:
        data = store.dataset(target)
        if not len(data):
            have = ", ".join(f"{r['backend']}/{r['device']}/{r['profile']} ({r['n_unique']})" for r in store.summary())
            bad = f"; {skipped_note(store.skipped)}" if store.skipped else ""
            raise LpmError(
                f"{db} holds no usable measurements for {backend}/{device}/{profile} (it has: {have or 'nothing'}"
                f"{bad}); {hint}"
            )
    return data
