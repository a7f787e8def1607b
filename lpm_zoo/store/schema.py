"""The SQLite schema of a measurement store, its migrations, and what a file must hold to be one."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from lpm_zoo.errors import LpmError

SCHEMA_VERSION = 2  # 2: the `repeat` column and one row per (backend, device, profile, cell_key, repeat)

SCHEMA_SQL = """
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
ADD_REPEAT = (
    "ALTER TABLE measurements ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0",
    ("UPDATE measurements SET repeat = (SELECT COUNT(*) FROM measurements AS o WHERE o.backend = measurements.backend"
     " AND o.device = measurements.device AND o.profile = measurements.profile"
     " AND o.cell_key = measurements.cell_key AND o.id < measurements.id)"),
)
INDEXES = (  # no-ops where they exist
    "CREATE INDEX IF NOT EXISTS measurements_by_set ON measurements (backend, device, profile, cell_key)",
    "CREATE UNIQUE INDEX IF NOT EXISTS measurements_once ON measurements (backend, device, profile, cell_key, repeat)",
)

COLUMNS = ("id", "backend", "device", "profile", "cell_key", "genotype_key", "encoding", "genotype", "latency_ms",
            "spread_ms", "runs_ms", "protocol", "timestamp")  # what every reader needs (schema 1 and later)


REQUIRED_COLUMNS = set(COLUMNS)


def table_columns(db: sqlite3.Connection) -> set[str]:
    """The column names of a store's measurements table."""
    return {row[1] for row in db.execute("PRAGMA table_info(measurements)")}


def schema_version(db: sqlite3.Connection, path: Path) -> int | None:
    """The schema version of an lpm store (None: an empty database); a foreign or newer file is an LpmError."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if not {"measurements", "meta"} <= tables:
        raise LpmError(f"{path} is an SQLite database but not an lpm measurement store (no measurements/meta "
                       f"tables); it was left untouched: give another --db path")
    missing = REQUIRED_COLUMNS - table_columns(db)
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


def ro_uri(path: Path, immutable: bool = False) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")
