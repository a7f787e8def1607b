"""The results table: one row per finished trial (its grid point, what the search found, the measured latency per
profile, the evaluation training's accuracy, the network's multiply-adds), as DIR/results.csv and .parquet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import refuse_link, write_atomic
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2
from lpm_zoo.search.sweep.checks import bad, number, obj, read_checked, text
from lpm_zoo.search.sweep.grid import Trial, lambda_value
from lpm_zoo.search.sweep.trial import anytime_genotype, read_state

COLUMNS = ("trial", "kind", "method", "dataset", "predictor", "lambda", "lambda_value", "relative", "noise", "seed",
           "reference", "genotype", "skip_normal", "predicted_ms", "lat_alpha_ms", "reference_ms", "val_acc",
           "test_acc", "params_M", "madds_M", "cifar_params_M", "search_s", "train_s", "trained_on")


def profile_column(profile: str) -> str:
    """The results column of the latency measured on `profile` (ms)."""
    return f"latency_ms_{profile}"


def _load(path: Path) -> dict[str, Any]:
    try:
        return read_checked(path)
    except OSError as e:
        raise LpmError(f"{clip(str(path))} is not a step's JSON ({e.strerror or type(e).__name__}); delete it to run "
                       "the step again") from None


def _same(data: dict[str, Any], where: Path, key: str, want: Any) -> None:
    if data.get(key) != want:
        raise bad(where, f"{key} {clip(data.get(key), 40)} is not this trial's ({clip(want, 40)})")


def results_row(t: Trial, folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The finished trial's row, computed from its own step files (never from a state row), each value checked
    and the steps' coordinates (λ, seed, method, predictor, dataset, profile, backend) matched to the trial's."""
    row = t.as_row()
    if t.reference:
        geno = parse_genotype(t.reference_spec, DARTS_V2.reduce, allow_path=False).to_dict()
        search: dict[str, Any] = {}
    else:
        where = folder / "search.json"
        search = _load(where)
        lam, rel = lambda_value(t.lam)
        if not isinstance(search.get("lambda"), (int, float)) or float(search["lambda"]) != float(f"{lam:g}"):
            raise bad(where, f"lambda {clip(search.get('lambda'), 40)} is not this trial's ({lam:g})")
        for key, want in (("seed", t.seed), ("method", t.method), ("predictor", t.predictor), ("relative", rel)):
            _same(search, where, key, want)
        geno = _genotype(obj(search.get("genotype_json"), where, "genotype_json"), where, "genotype_json: ")
        for key in ("predicted_latency_ms", "lat_alpha_ms", "reference_ms"):
            number(search.get(key), where, key, 0.0)
        number(search.get("val_acc"), where, "val_acc", 0.0, 1.0)
    where = folder / "train.json"
    train = _load(where)
    _same(train, where, "dataset", t.dataset)
    number(train.get("test_acc"), where, "test_acc", 0.0, 1.0, optional=False)
    number(train.get("params_M"), where, "params_M", 0.0)
    number(train.get("seconds"), where, "seconds", 0.0)
    trained_on = train.get("trained_on")  # absent from trainings before 2026-12-08
    if trained_on is not None:
        text(trained_on, where, "trained_on", 200)
    where = folder / "info.json"
    info = _load(where)
    number(info.get("madds_M"), where, "madds_M", 0.0)
    number(info.get("params_M"), where, "params_M", 0.0)
    row.update(genotype=json.dumps(geno, separators=(",", ":")), skip_normal=_skips(geno),
               predicted_ms=search.get("predicted_latency_ms"), lat_alpha_ms=search.get("lat_alpha_ms"),
               reference_ms=search.get("reference_ms"), val_acc=search.get("val_acc"),
               test_acc=train.get("test_acc"), params_M=train.get("params_M"), madds_M=info.get("madds_M"),
               cifar_params_M=info.get("params_M"),
               search_s=_seconds(folder, "search"), train_s=train.get("seconds"), trained_on=trained_on)
    for profile in settings["measure"]["profiles"]:
        where = folder / f"measure-{profile}.json"
        m = _measurement(where, profile, settings)
        ran = obj(m.get("ran_on") or {}, where, "ran_on")
        on = ran.get("node") or ran.get("host")
        row[profile_column(profile)] = m["latency_ms"]
        row[f"spread_ms_{profile}"] = number(m.get("spread_ms"), where, "spread_ms", 0.0)
        row[f"measured_on_{profile}"] = None if on is None else text(on, where, "ran_on's host", 200)
    if t.kind == "search" and t.lam == "0":
        for epoch in settings.get("anytime", []):
            row.update(anytime_columns(folder, t, settings, epoch))
    return row


def anytime_columns(folder: Path, t: Trial, settings: dict[str, Any], epoch: int) -> dict[str, Any]:
    """A λ = 0 trial's columns for its cell after search epoch `epoch` (`lpm sweep --anytime`): genotype, normal-cell
    skips, test accuracy and latency per profile, suffixed _eN; each None until its steps have run (a trial taken
    with --reuse from a sweep without --anytime runs them next)."""
    names = [f"genotype_e{epoch}", f"skip_normal_e{epoch}", f"test_acc_e{epoch}",
             *(f"{profile_column(p)}_e{epoch}" for p in settings["measure"]["profiles"])]
    out: dict[str, Any] = dict.fromkeys(names)
    gfile, tfile = folder / anytime_genotype(epoch), folder / f"train-e{epoch}.json"
    if not (refuse_link(gfile) and refuse_link(tfile)):
        return out
    geno = _genotype(_load(gfile), gfile)
    train = _load(tfile)
    _same(train, tfile, "dataset", t.dataset)
    out.update({names[0]: json.dumps(geno, separators=(",", ":")), names[1]: _skips(geno),
                names[2]: number(train.get("test_acc"), tfile, "test_acc", 0.0, 1.0, optional=False)})
    for profile in settings["measure"]["profiles"]:
        where = folder / f"measure-{profile}-e{epoch}.json"
        if refuse_link(where):
            out[f"{profile_column(profile)}_e{epoch}"] = _measurement(where, profile, settings)["latency_ms"]
    return out


def _genotype(data: dict[str, Any], where: Path, what: str = "") -> dict[str, Any]:
    """A step file's genotype object, parsed as data (never a path), as a plain dict; else one LpmError line."""
    try:
        return parse_genotype(json.dumps(data), DARTS_V2.reduce, allow_path=False).to_dict()
    except LpmError as e:
        raise bad(where, f"{what}{e}") from None


def _skips(geno: dict[str, Any]) -> int:
    """The skip_connect edges of a genotype dict's normal cell."""
    return sum(1 for op in geno.get("normal") or [] if op and op[0] == "skip_connect")


def _measurement(where: Path, profile: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A measurement step's JSON, matched to its profile and the sweep's backend, its latency_ms checked (> 0)."""
    m = _load(where)
    _same(m, where, "profile", profile)
    _same(m, where, "backend", settings["measure"]["backend"])
    number(m.get("latency_ms"), where, "latency_ms", 0.0, above=True, optional=False)
    return m


def _seconds(folder: Path, step: str) -> float | None:
    res = read_state(folder).get("steps", {}).get(step)
    return res.get("seconds") if isinstance(res, dict) else None


def collect_rows(out: Path, trials: list[Trial], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of every trial of `trials` done in `out`, each recomputed from the trial's own step files
    (`results_row`; a file lpm did not write is one LpmError line)."""
    rows = []
    for t in trials:
        folder = out / "trials" / t.id
        if not refuse_link(folder):
            continue
        if read_state(folder).get("status") == "done":
            rows.append(results_row(t, folder, settings))
    return rows


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
    write_atomic(out / "results.csv", buf.getvalue().encode())
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
    write_atomic(out / "results.parquet", sink.getvalue().to_pybytes())
