"""`lpm predict`: the latency of genotypes by a fitted predictor, one or a JSON Lines file of them."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

from lpm_zoo.cli import Command
from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.notes import note
from lpm_zoo.space import Genotype, load_json

MAX_LINE_BYTES = 64 * 1024
"""Longest line of `lpm predict --input` (a genotype line is ~600 bytes): a longer one is refused unread."""


def _configure_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--predictor", required=True, metavar="NAME", help="fitted predictor (see lpm zoo list), e.g. ort-cpu")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--genotype", action="append", metavar="G",
                     help="a published name, DARTS string or JSON genotype; repeatable")
    src.add_argument("--input", metavar="FILE",
                     help="JSON lines, each with a 'genotype' key: DARTS string, published name, or "
                          "{'normal': 8 [op, input] pairs, 'reduce': ...}; '-' reads stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per genotype, in input order")


def _parse_line(line: bytes, reduce: Any):
    """The JSON object on one `--input` line and its genotype; the genotype is data, never a file path."""

    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LpmError(f"not UTF-8 text (byte {e.start}); --input is JSON lines in UTF-8") from None
    obj = load_json(text)
    if not isinstance(obj, dict) or "genotype" not in obj:
        raise LpmError("expected a JSON object with a 'genotype' key")
    g = obj["genotype"]
    if isinstance(g, str):
        return obj, parse_genotype(g, reduce, allow_path=False)
    if isinstance(g, dict):
        return obj, Genotype.from_dict(g, reduce)
    raise LpmError("'genotype' must be a DARTS string, a published name or an object with 'normal'")


def _read_inputs(path: str, reduce: Any) -> list[tuple[Any, Any]]:
    """Every genotype of the JSON lines in `path` ('-': stdin), read in bytes with a cap on each line."""
    if path == "-":
        return _parse_lines(sys.stdin.buffer, "stdin", reduce)
    try:
        with open(path, "rb") as f:
            return _parse_lines(f, clip(path), reduce)
    except OSError as e:
        raise LpmError(f"cannot read --input {clip(path)}: {e.strerror}") from None


def _parse_lines(f: Any, name: str, reduce: Any) -> list[tuple[Any, Any]]:
    items = []
    for no in itertools.count(1):
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return items
        if len(line) > MAX_LINE_BYTES:
            raise LpmError(f"{name} line {no} is longer than {MAX_LINE_BYTES // 1024} KB; "
                           "each line holds one JSON object with a 'genotype'")
        if not line.strip():
            continue
        try:
            items.append(_parse_line(line, reduce))
        except LpmError as e:
            raise LpmError(f"{name} line {no}: {e}") from None


def _run_predict(args: argparse.Namespace) -> int:


    from lpm_zoo.encoding import ENCODING_BOTH, cells_to_arrays
    from lpm_zoo.predictors import get_predictor
    from lpm_zoo.profiles import PROFILES

    p = get_predictor(args.predictor)  # its hardware note waits until every input is valid: an error is one line
    prof = PROFILES.get(p.meta.get("profile", ""))
    both = p.meta.get("encoding") == ENCODING_BOTH  # whole genotypes: a missing reduction cell is an error
    reduce = prof.reduce if prof and not both else None
    if args.input:
        items = _read_inputs(args.input, reduce)
    else:
        items = []
        for spec in args.genotype:
            try:
                items.append((spec, parse_genotype(spec, reduce)))
            except LpmError as e:
                raise LpmError(f"--genotype {clip(spec, 60)}: {e}") from None
    if prof and not both and any(g.reduce != prof.reduce for _, g in items):
        note(f"{args.predictor} predicts the normal cell with the {prof.name} profile's fixed"
             " reduction cell; the given reduction cells are not part of the prediction")
    genotypes = [g for _, g in items]
    lat = (p.predict(genotypes) if both else p.predict(cells_to_arrays(genotypes))) if items else []
    for (src, g), ms in zip(items, lat):
        if args.json:
            rec = dict(src) if isinstance(src, dict) else {"genotype": src}
            rec.update(latency_ms=float(ms), predictor=args.predictor)
            print(json.dumps(rec))
        else:
            label = src.get("genotype") if isinstance(src, dict) else src
            label = label if isinstance(label, str) and len(label) <= 60 else g.to_darts()
            print(f"{ms:10.4f} ms  {printable(label)}")
    return 0


command = Command(help="predict the latency of genotypes with a fitted predictor",
                          configure=_configure_predict, run=_run_predict)
