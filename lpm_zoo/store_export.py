"""Export a measurement store to Parquet or CSV (one row per measurement; JSON columns stay JSON text)."""

from __future__ import annotations

import json
from pathlib import Path

from lpm_zoo.errors import LpmError
from lpm_zoo.store import MeasurementStore

COLUMNS = ("id", "backend", "device", "profile", "cell_key", "genotype_key", "encoding", "genotype", "latency_ms",
           "spread_ms", "runs_ms", "protocol", "timestamp")


def _rows(store: MeasurementStore) -> list[dict]:
    out = []
    for r in store.measurements():
        r = dict(r)
        for col in ("genotype", "runs_ms", "protocol"):
            r[col] = json.dumps(r[col], sort_keys=True)
        out.append({c: r.get(c) for c in COLUMNS})
    return out


def export_store(db: str | Path, out: str | Path) -> int:
    """Write every measurement of `db` to `out` (.parquet or .csv, by suffix); returns the row count."""
    out = Path(out)
    if not Path(db).is_file():
        raise LpmError(f"no measurement database at {db}")
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise LpmError(f"cannot export to {out.name!r}: give a .parquet or .csv file name")
    with MeasurementStore(db) as store:
        rows = _rows(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=pa.schema([
            ("id", pa.int64()), ("backend", pa.string()), ("device", pa.string()), ("profile", pa.string()),
            ("cell_key", pa.string()), ("genotype_key", pa.string()), ("encoding", pa.string()),
            ("genotype", pa.string()), ("latency_ms", pa.float64()), ("spread_ms", pa.float64()),
            ("runs_ms", pa.string()), ("protocol", pa.string()), ("timestamp", pa.float64())]))
        pq.write_table(table, tmp)
    else:
        import csv

        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
    tmp.replace(out)
    return len(rows)
