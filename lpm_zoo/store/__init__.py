"""The measurement store: one SQLite file of latency measurements per device, safe to kill at any time.

`database` (the `MeasurementStore` class and `load_dataset`), `rows` (validation of every stored row),
`records` (`Measurement`, `LatencyDataset`), `target` (`Target` and its meta keys), `bundled` (the shipped
stores), `schema` (the SQLite schema and migrations), `analysis` (repeatability of the data), `export`
(CSV / JSON Lines / Parquet).
"""

from lpm_zoo.store.bundled import BUNDLED_PREFIX, bundled_name, list_bundled, resolve_db
from lpm_zoo.store.database import MeasurementStore, load_dataset
from lpm_zoo.store.records import LatencyDataset, Measurement
from lpm_zoo.store.rows import MAX_LATENCY_MS, MAX_PROTOCOL_COUNT, BadRow, json_safe, skipped_note, validate_row
from lpm_zoo.store.schema import SCHEMA_VERSION
from lpm_zoo.store.target import Target, baseline_key, checked_baseline, statistic_key

__all__ = ["BUNDLED_PREFIX", "MAX_LATENCY_MS", "MAX_PROTOCOL_COUNT", "SCHEMA_VERSION", "BadRow", "LatencyDataset",
           "Measurement", "MeasurementStore", "Target", "baseline_key", "bundled_name", "checked_baseline", "json_safe",
           "list_bundled", "load_dataset", "resolve_db", "skipped_note", "statistic_key", "validate_row"]
