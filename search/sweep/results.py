"""The results table: one row per finished trial (its grid point, what the search found, the measured latency per
profile, the evaluation training's accuracy, the network's multiply-adds), as DIR/results.csv and .parquet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2
from search.sweep.grid import Trial, write_bytes_atomic

COLUMNS = ("trial", "kind", "method", "dataset", "predictor", "lambda", "lambda_value", "relative", "noise", "seed",
           "reference", "genotype", "skip_normal", "predicted_ms", "lat_alpha_ms", "reference_ms", "val_acc",
           "test_acc", "params_M", "madds_M", "cifar_params_M", "search_s", "train_s")


def profile_column(profile: str) -> str:
    """The results column of the latency measured on `profile` (ms)."""
    return f"latency_ms_{profile}"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LpmError(f"{clip(str(path))} is not a step's JSON ({type(e).__name__}); delete it to run the step again") \
            from None
    if not isinstance(data, dict):
        raise LpmError(f"{clip(str(path))} is not a step's JSON; delete it to run the step again")
    return data


def results_row(t: Trial, folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The finished trial's row, read from its step files."""
    row = t.as_row()
    if t.reference:
        geno = parse_genotype(t.reference_spec, DARTS_V2.reduce, allow_path=False).to_dict()
        search: dict[str, Any] = {}
    else:
        search = _load(folder / "search.json")
        geno = search.get("genotype_json")
        if not isinstance(geno, dict):
            raise LpmError(f"{clip(str(folder / 'search.json'))} names no genotype; delete it to search again")
    train = _load(folder / "train.json")
    info = _load(folder / "info.json")
    normal = geno.get("normal") or []
    row.update(genotype=json.dumps(geno, separators=(",", ":")),
               skip_normal=sum(1 for op in normal if op and op[0] == "skip_connect"),
               predicted_ms=search.get("predicted_latency_ms"), lat_alpha_ms=search.get("lat_alpha_ms"),
               reference_ms=search.get("reference_ms"), val_acc=search.get("val_acc"),
               test_acc=train.get("test_acc"), params_M=train.get("params_M"), madds_M=info.get("madds_M"),
               cifar_params_M=info.get("params_M"),
               search_s=_seconds(folder, "search"), train_s=train.get("seconds"))
    for profile in settings["measure"]["profiles"]:
        m = _load(folder / f"measure-{profile}.json")
        ran = m.get("ran_on") or {}
        row[profile_column(profile)] = m.get("latency_ms")
        row[f"spread_ms_{profile}"] = m.get("spread_ms")
        row[f"measured_on_{profile}"] = ran.get("node") or ran.get("host")
    return row


def _seconds(folder: Path, step: str) -> float | None:
    try:
        return json.loads((folder / "state.json").read_text())["steps"][step]["seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The table's columns: the fixed ones, then the per-profile ones in first-seen order."""
    extra = [k for r in rows for k in r if k not in COLUMNS]
    return [*COLUMNS, *dict.fromkeys(extra)]


def write_tables(out: Path, rows: list[dict[str, Any]]) -> None:
    """Write `rows` to out/results.csv and out/results.parquet (each through a rename)."""
    cols = columns(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in cols})
    write_bytes_atomic(out / "results.csv", buf.getvalue().encode())
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {k: [r.get(k) for r in rows] for k in cols}
    for k, vals in data.items():  # a column of ints and floats is a column of floats
        if any(isinstance(v, float) for v in vals):
            data[k] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in vals]
    try:
        table = pa.table(data) if rows else pa.table({k: pa.array([], pa.string()) for k in cols})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise LpmError(f"cannot write results.parquet ({type(e).__name__}: {clip(str(e), 120)}); "
                       "results.csv is written") from None
    write_bytes_atomic(out / "results.parquet", sink.getvalue().to_pybytes())


def read_results(out: Path) -> list[dict[str, Any]]:
    """The rows of out/results.parquet ([] before any trial finished; an LpmError line when unreadable)."""
    import pyarrow.parquet as pq

    if not (out / "results.parquet").exists():
        return []
    try:
        return pq.read_table(out / "results.parquet").to_pylist()
    except (OSError, ValueError) as e:
        raise LpmError(f"cannot read {clip(str(out / 'results.parquet'))} ({type(e).__name__})") from None
