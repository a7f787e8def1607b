"""A stored row, checked: every value of every column validated before a reader uses it (`validate_row`),
the canonical keys a row must carry, and how skipped rows are reported."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from lpm_zoo.encoding import N_BITS, encode_arrays, genotypes_to_arrays, keys_from_arrays
from lpm_zoo.errors import LpmError
from lpm_zoo.profiles import PROFILES
from lpm_zoo.space import Genotype

MAX_PROTOCOL_COUNT = 10_000  # the most warm-up runs, rounds, reps, threads or interleave a stored protocol may ask
MAX_LATENCY_MS = 1e7  # about 3 hours: a larger stored latency is damage, not a measurement
_PROTOCOL_COUNTS = {"warmup": 0, "rounds": 1, "reps": 1, "threads": 1, "interleave": 1}  # field: least value
_PROTOCOL_TIMES = ("reference_ms", "reference_baseline_ms", "ratio", "raw_latency_ms")  # positive when present


class BadRow(ValueError):
    """A stored row that cannot be used; its message says which column is wrong."""


def is_number(value: Any) -> bool:
    """A real number (int or float, not bool), finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def json_column(rec: dict[str, Any], col: str, kind: type) -> Any:
    """Column `col` of a row parsed as JSON of type `kind`, or BadRow."""
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
    out, genotype = checked_row(rec)
    problem = key_problems([out], [genotype])[0]
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


def key_problems(recs: list[dict[str, Any]], genotypes: list[Genotype]) -> list[str | None]:
    """For each checked row: why its keys or encoding are not those of its genotype, or None.

    A profile this version does not know is taken to encode as many cells as its cell_key names.
    """

    cells = [PROFILES[r["profile"]].cells if r["profile"] in PROFILES else 1 + (":" in r["cell_key"]) for r in recs]
    out: list[str | None] = []
    for rec, (key, gkey, bits) in zip(recs, stored_columns(genotypes, cells)):
        wrong = [col for col, want in (("cell_key", key), ("genotype_key", gkey), ("encoding", bits)) if rec[col] != want]
        out.append(f"{wrong[0]} is not the canonical one of the row's genotype (an edited row)" if wrong else None)
    return out


def checked_row(rec: dict[str, Any]) -> tuple[dict[str, Any], Genotype]:
    """`validate_row` up to the keys: the row with its JSON columns decoded, and its genotype."""
    for col in ("backend", "device", "profile", "cell_key", "genotype_key", "encoding"):
        v = rec.get(col)
        if not isinstance(v, str) or not v or len(v) > (224 if col == "encoding" else 200) or not v.isprintable():
            raise BadRow(f"{col} is not short printable text")
    lat = rec["latency_ms"]
    if not is_number(lat) or not 0 < lat <= MAX_LATENCY_MS:
        raise BadRow("latency_ms is not a positive finite number of ms")
    if rec["spread_ms"] is not None and not (is_number(rec["spread_ms"]) and rec["spread_ms"] >= 0):
        raise BadRow("spread_ms is not a finite number >= 0")
    if not is_number(rec["timestamp"]):
        raise BadRow("timestamp is not a finite number")
    out = dict(rec)
    out["runs_ms"] = runs = json_column(rec, "runs_ms", list)
    if not all(is_number(t) and t >= 0 for t in runs):
        raise BadRow("runs_ms holds a value that is not a finite time >= 0")
    out["genotype"] = json_column(rec, "genotype", dict)
    try:
        genotype = Genotype.from_dict(out["genotype"])
    except (LpmError, TypeError, ValueError, KeyError, IndexError):
        raise BadRow("genotype is not a valid genotype") from None
    out["protocol"] = proto = json_column(rec, "protocol", dict)
    for name, least in _PROTOCOL_COUNTS.items():
        v = proto.get(name)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and least <= v <= MAX_PROTOCOL_COUNT):
            raise BadRow(f"protocol {name} is not an integer from {least} to {MAX_PROTOCOL_COUNT}")
    for name in _PROTOCOL_TIMES:
        if name in proto and not (is_number(proto[name]) and proto[name] > 0):
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
