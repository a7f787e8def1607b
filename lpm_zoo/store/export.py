"""Export a measurement store to Parquet or CSV (one row per measurement; JSON columns stay JSON text)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from lpm_zoo.errors import LpmError
from lpm_zoo.store.database import MeasurementStore

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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _write(rows: list[dict], tmp: str, suffix: str) -> None:
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
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)


def export_store(db: str | Path, out: str | Path) -> tuple[int, dict[int, str]]:
    """Write every good measurement of `db` to `out` (.parquet or .csv, by suffix).

    Returns the row count and the store's bad rows left out (id: why). The store is opened
    read-only, `out` may not be the store itself, and `out` appears whole or not at all (it is
    written under a temporary name in its folder, then renamed).
    """
    out, db = Path(out), Path(db)
    if not db.is_file():
        raise LpmError(f"no measurement database at {db}")
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise LpmError(f"cannot export to {out.name[:100]!r}: give a .parquet or .csv file name")
    if _same_file(out, db):
        raise LpmError(f"--out {out} is the measurement store itself; give another file name")
    if out.is_dir():
        raise LpmError(f"--out {out} is a directory; give a file name such as {out}/measurements{suffix}")
    with MeasurementStore(db, readonly=True) as store:
        rows = _rows(store)
        skipped = dict(store.skipped)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the export gets the usual permissions
        _write(rows, tmp, suffix)
        os.replace(tmp, out)
        tmp = None
    except OSError as e:
        raise LpmError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return len(rows), skipped
