"""`lpm fit`, `lpm compare`, `lpm zoo`, `lpm predict`: fit, compare, list and use latency predictors."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lpm_zoo.cli import Command, check_seed, int_list
from lpm_zoo.device import plain_name
from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.hardware import describe
from lpm_zoo.notes import note
from lpm_zoo.space import Genotype, load_json

MAX_LINE_BYTES = 64 * 1024
"""Longest line of `lpm predict --input` (a genotype line is ~600 bytes): a longer one is refused unread."""


# --- shared arguments ----------------------------------------------------------------------------
def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, metavar="PATH", help="measurement database (written by lpm profile)")
    p.add_argument("--backend", required=True, help="backend the latencies were measured on (e.g. ort, torch, trt)")
    p.add_argument("--device-name", "--device", dest="device", default=None,
                   help="the device name the data is filed under, as `lpm data info` shows it (e.g. xeon, p100; "
                        "default: the store's only one for this backend and profile)")
    p.add_argument("--profile", required=True, help="measurement profile (e.g. cifar-b1)")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="held-out architectures (fixed seeded split; default: a fifth of the data, at most 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--epochs", type=int, default=None, metavar="E", help="training epochs of the mlp types")
    p.add_argument("--param", action="append", default=[], metavar="[TYPE.]KEY=VALUE",
                   help="a predictor parameter (JSON value), e.g. --param rf.n_estimators=100; repeatable")


def _parse_params(specs: list[str]) -> list[tuple[str | None, str, Any]]:
    """(type or None, key, value) of each --param; a value is JSON, or else the bare word itself."""

    out = []
    for spec in specs:
        key, sep, raw = spec.partition("=")
        if not sep or not key:
            raise LpmError(f"--param {clip(spec)}: expected [TYPE.]KEY=VALUE, e.g. --param mlp.epochs=200")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except (ValueError, RecursionError):  # a number over 4300 digits, nesting too deep
            raise LpmError(f"--param {clip(key)}: the value is too large or nested too deeply") from None
        typ, _, name = key.rpartition(".")
        out.append((typ or None, name, value))
    return out


def _params_for(args: argparse.Namespace):
    """A function giving the constructor parameters of a predictor type from the command line (checked)."""

    from lpm_zoo.predictors import predictor_class
    from lpm_zoo.predictors.registry import check_params
    from lpm_zoo.profiles import get_profile


    specs = _parse_params(args.param)
    get_profile(args.profile)
    if args.epochs is not None and args.epochs < 1:
        raise LpmError(f"--epochs must be at least 1, got {args.epochs}")
    check_seed(args.seed)
    if args.test_size is not None and args.test_size < 0:
        raise LpmError(f"--test-size must be >= 0, got {clip(args.test_size)}")

    def params(t: str) -> dict[str, Any]:
        names = predictor_class(t)._param_names()
        out: dict[str, Any] = {}
        if "profile" in names:
            out["profile"] = args.profile
        if args.epochs is not None and "epochs" in names:
            out["epochs"] = args.epochs
        for typ, key, value in specs:
            if typ is not None:
                predictor_class(typ)  # a misspelled type prefix is an error, not silently ignored
            if typ is None or typ == t:
                if key not in names:
                    if typ is None:
                        continue
                    raise LpmError(f"--param {clip(typ)}.{clip(key)}: {t} has no parameter {clip(key)}; "
                                   f"it has {', '.join(names)}")
                out[key] = value
        check_params(t, out)
        return out

    return params


def _resolve_device(args: argparse.Namespace) -> str:
    """`args.device`, or the one device name the store files this backend/profile under (set on `args`)."""

    from lpm_zoo.store import MeasurementStore, resolve_db


    if args.device is None:
        names: list[str] = []
        if resolve_db(args.db).is_file():
            with MeasurementStore(args.db, readonly=True) as store:
                names = list(store.devices(args.backend, args.profile))
        if len(names) > 1:
            raise LpmError(f"{clip(args.db)} holds {args.backend}/{args.profile} measurements of several devices "
                           f"({', '.join(clip(n, 40) for n in names[:8])}); choose one with --device-name")
        args.device = names[0] if names else "cpu"  # none: load_dataset says what the store holds
        if not plain_name(args.device):  # a store's text names no directory
            raise LpmError(f"{clip(args.db)} files its data under the device name {clip(args.device, 40)}, which is not "
                           "a plain word; give --device-name and --name")
    return args.device


def _load(args: argparse.Namespace):
    from lpm_zoo.profiles import get_profile
    from lpm_zoo.store import load_dataset, skipped_note

    get_profile(args.profile)
    data = load_dataset(args.db, args.backend, _resolve_device(args), args.profile)  # read-only; bad rows left out
    if data.skipped:
        print(f"lpm {getattr(args, 'command', 'fit')}: warning: {skipped_note(data.skipped)}", file=sys.stderr)
    return data


# --- lpm fit ---------------------------------------------------------------------------------------
def _configure_fit(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--predictor", default="mlp", metavar="TYPE", help="predictor type (mlp, ridge, rf, gbrt, knn, lut, flops, ...)")
    p.add_argument("--name", default=None, help="name in the zoo (default: BACKEND-DEVICE)")
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="training architectures (default: all left after the held-out set)")
    p.add_argument("--zoo-dir", default=None, metavar="DIR",
                   help="zoo directory to write into (default: $LPM_ZOO_HOME or ~/.cache/lpm_zoo/zoo)")
    p.add_argument("--json", action="store_true", help="print the saved metadata as JSON")


def _run_fit(args: argparse.Namespace) -> int:


    from lpm_zoo.evaluation.metrics import default_test_size, metrics, relative_spread_pct, split_indices
    from lpm_zoo.predictors import create_predictor, predictor_class, save_predictor, user_zoo_dir
    from lpm_zoo.predictors.zoo import check_new_name

    predictor_class(args.predictor)
    name = args.name or f"{args.backend}-{_resolve_device(args)}"
    if not name or "/" in name or name.startswith("."):
        raise LpmError(f"--name {clip(name)}: a predictor name is a plain word like ort-cpu")
    params = _params_for(args)(args.predictor)
    zoo = Path(args.zoo_dir).expanduser() if args.zoo_dir else user_zoo_dir()
    check_new_name(name, zoo, "--name" if args.name else "the default name (BACKEND-DEVICE)")
    data = _load(args)
    n = len(data)
    test_size = default_test_size(n) if args.test_size is None else args.test_size
    pool, test = split_indices(n, test_size, args.seed)
    k = len(pool) if args.train_size is None else args.train_size
    if not 2 <= k <= len(pool):
        raise LpmError(f"--train-size {k}: between 2 and {len(pool)} architectures are available"
                       f" ({n} measured, {test_size} held out)")
    if "progress" in predictor_class(args.predictor)._param_names() and sys.stderr.isatty():
        params.setdefault("progress", True)
    p = create_predictor(args.predictor, **params)
    idx = pool[:k]
    print(f"fitting {args.predictor} on {k} architectures of {args.backend}/{args.device}/{args.profile}"
          f" ({test_size} held out)", file=sys.stderr)
    t0 = time.perf_counter()
    p.fit((data.ops[idx], data.inputs[idx]), data.latency_ms[idx])
    fit_s = time.perf_counter() - t0
    meta: dict[str, Any] = {"name": name, "backend": args.backend, "device": args.device, "profile": args.profile,
                            "fit_seconds": round(fit_s, 3), "split": {"seed": args.seed, "test_size": test_size},
                            "run_spread_pct": relative_spread_pct(data.latency_ms, data.spread_ms),
                            "data_repeatability": data.repeatability, "data_statistic": data.statistic,
                            "hardware": data.hardware}
    if test_size:
        meta["metrics"] = metrics(data.latency_ms[test], p.predict((data.ops[test], data.inputs[test])))
        meta["metrics"]["labels_measured_twice"] = data.repeated(test)
    if "progress" in p.get_params():
        p.progress = False  # stored parameters describe the model, not this terminal
    path = save_predictor(p, zoo / name, **meta)
    if args.json:
        print(json.dumps(p.meta, sort_keys=True))
    else:
        m = meta.get("metrics")
        if m:
            print(f"held-out ({m['n']}): MAE {m['mae_ms']:.4f} ms, MRE {m['mre_pct']:.2f}%, within ±10% "
                  f"{m['within10_pct']:.1f}%, Kendall tau {m['kendall_tau']:.3f}, Spearman rho {m['spearman_rho']:.3f}"
                  f"; {data.held_out_note(test)}")
        print(f"saved {name} ({args.predictor}, fit {fit_s:.1f} s) to {path}")
    return 0


# --- lpm compare -------------------------------------------------------------------------------------
def _configure_compare(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--predictors", default="mlp,ridge,rf,gbrt,knn,lut,flops", metavar="T1,T2,...",
                   help="predictor types to compare")
    p.add_argument("--train-sizes", default="1000,2000,5000,10000", metavar="N1,N2,...",
                   help="training-set sizes (nested subsets of one training pool)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write compare.json and the PNG plots (default: compare-BACKEND-DEVICE-PROFILE)")
    p.add_argument("--json", action="store_true", help="print the result rows as JSON lines instead of a table")
    p.add_argument("--no-resume", action="store_true",
                   help="refit everything, ignoring results an earlier run left in OUT/compare.json")


def _repeatability_line(data: Any) -> str:
    """What the data's noise floor is, or how to find it."""
    r = data.repeatability
    if not r:
        return (f"repeatability of the data: unknown (no architecture measured twice; `lpm recheck --backend "
                f"{data.backend} --device ... --profile {data.profile} --samples 300 --db ...` measures it)")
    return (f"repeatability of the data ({r['n']} architectures measured twice): mean |a-b|/mean {r['mean_pct']:.2f}%,"
            f" median {r['median_pct']:.2f}%, 90th percentile {r['p90_pct']:.2f}%"
            + (f", Kendall tau of the two {r['kendall_tau']:.3f}" if "kendall_tau" in r else ""))


def _run_compare(args: argparse.Namespace) -> int:


    from lpm_zoo.evaluation import plots
    from lpm_zoo.evaluation.compare import HEADER, compare, format_row
    from lpm_zoo.evaluation.metrics import default_test_size, relative_spread_pct, split_indices
    from lpm_zoo.predictors import predictor_class
    from lpm_zoo.predictors.base import training_hash
    from lpm_zoo.predictors.linear import FlopsPredictor
    from lpm_zoo.profiles import get_profile

    types = [t.strip() for t in args.predictors.split(",") if t.strip()]
    if not types:
        raise LpmError("--predictors: give at least one predictor type")
    for t in types:
        predictor_class(t)
    sizes = int_list(args.train_sizes, "--train-sizes", 2, 10_000_000)
    params = _params_for(args)
    for t in types:
        params(t)  # every parameter checked before the data is read or anything is fitted
    data = _load(args)
    out = Path(args.out or f"compare-{args.backend}-{args.device}-{args.profile}")
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "compare.json"
    test_size = default_test_size(len(data)) if args.test_size is None else args.test_size
    config = {"backend": args.backend, "device": args.device, "profile": args.profile, "n": len(data),
              "data_hash": training_hash(data.keys, data.latency_ms), "test_size": test_size, "seed": args.seed}
    # Resume: results of an earlier (interrupted) run on the same data, split and parameters are reused.
    done: dict[tuple[str, int], tuple[dict, Any]] = {}
    previous: dict[str, Any] = {}
    if state_path.is_file() and not args.no_resume:
        try:
            previous = json.loads(state_path.read_text())
        except json.JSONDecodeError:
            pass
    if previous.get("config") == config:
        for r in previous.get("rows", []):
            t = r["predictor"]
            if t in types and r.get("params") == json.loads(json.dumps(params(t))):
                done[(t, r["train_size"])] = (r, previous.get("predictions", {}).get(f"{t}@{r['train_size']}"))
    title = f"{args.backend}/{args.device}/{args.profile}, {len(data)} architectures"
    rep = relative_spread_pct(data.latency_ms, data.spread_ms)
    state: dict[str, Any] = {"config": config, "rows": [r for r, _ in done.values()],
                             "predictions": {f"{t}@{k}": p for (t, k), (_, p) in done.items() if p is not None}}

    def save_state() -> None:
        tmp = state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, default=float) + "\n")
        os.replace(tmp, state_path)

    if not args.json:
        print(f"# {title}; spread of the raw runs (mean IQR / latency) {rep:.2f}%")
        print(f"# {_repeatability_line(data)}")
        if test_size:
            print(f"# held out: {data.held_out_note(split_indices(len(data), test_size, args.seed)[1])}")
        if done:
            print(f"# reusing {len(done)} result(s) from {state_path}")
        print(HEADER, flush=True)

    def show(row: dict[str, Any]) -> None:
        print(json.dumps(row) if args.json else format_row(row), flush=True)

    def record(row: dict[str, Any], pred: Any) -> None:
        row["params"] = json.loads(json.dumps(params(row["predictor"])))
        state["rows"].append(row)
        state["predictions"][f"{row['predictor']}@{row['train_size']}"] = [round(float(v), 6) for v in pred]
        save_state()  # an interrupted compare resumes from here
        show(row)

    rows, extra = compare(data, types, sizes, test_size, args.seed, params, on_result=record, done=done,
                          progress=sys.stderr.isatty())
    if done and not args.json:
        for r in rows:
            if (r["predictor"], r["train_size"]) in done:
                print(format_row(r) + "  (reused)")
    elif done:
        for r in rows:
            if (r["predictor"], r["train_size"]) in done:
                show(r)
    if extra["skipped_sizes"]:
        print(f"note: skipped training sizes {extra['skipped_sizes']}: more than the training pool holds",
              file=sys.stderr)
    prof = get_profile(args.profile)
    madds = FlopsPredictor(prof.name).madds(data.ops, data.inputs)  # whole genotypes on a -both profile
    plots.error_vs_train_size(rows, out / "error_vs_train_size.png", title)
    plots.predicted_vs_measured(extra["predictions"], out / "predicted_vs_measured.png",
                                f"{title}; held-out, largest training size")
    fig2 = plots.latency_vs_madds(madds, data.latency_ms, out / "latency_vs_madds.png", title)
    state.update(run_spread_pct=rep, latency_vs_madds=fig2, skipped_sizes=extra["skipped_sizes"],
                 table=rows, repeatability=data.repeatability)
    save_state()
    if not args.json:
        if data.repeatability:
            best = min(rows, key=lambda r: r["mre_pct"])
            print(f"best: {best['predictor']} at {best['train_size']} architectures, MRE {best['mre_pct']:.2f}% = "
                  f"{best['mre_pct'] / data.repeatability['mean_pct']:.2f} x the repeatability of the data")
        print(f"latency vs multiply-adds: Pearson r {fig2['pearson_r']:.3f}, Kendall tau {fig2['kendall_tau']:.3f}")
        print(f"wrote {state_path}, error_vs_train_size.png, predicted_vs_measured.png, latency_vs_madds.png in {out}")
    return 0


# --- lpm zoo -----------------------------------------------------------------------------------------
def _configure_zoo(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list"], help="list: the fitted predictors (user zoo first, then bundled)")
    p.add_argument("--json", action="store_true", help="one JSON object per predictor")


_ZOO_COLUMN_MAX = 40  # a longer name or device is clipped in the table (--json has it whole)


def _run_zoo(args: argparse.Namespace) -> int:


    from lpm_zoo.predictors.zoo import zoo_dirs, zoo_table

    rows = zoo_table()
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return 0
    if not rows:
        print(f"no fitted predictors (looked in {', '.join(str(d) for _, d in zoo_dirs())}); "
              "make one with lpm profile ... then lpm fit ...")
        return 0
    head = ("name", "type", "backend", "device", "profile", "train", "MRE %", "tau")
    table, broken = [], []
    for r in rows:
        if "error" in r:
            broken.append(printable(f"{r['name']} unusable: {r['error']}  {r['where']}"))
            continue
        m = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
        mre, tau = (f"{m[k]:{f}}" if isinstance(m.get(k), (int, float)) else "-"
                    for k, f in (("mre_pct", ".2f"), ("kendall_tau", ".3f")))
        cols = [printable(str(r.get(k))[:_ZOO_COLUMN_MAX])
                for k in ("name", "type", "backend", "device", "profile", "train_size")]
        table.append((*cols, mre, tau, printable(f"{r['where']:<8} {describe(r.get('hardware'))}")))
    widths = [max([len(h)] + [len(t[i]) for t in table]) for i, h in enumerate(head)]  # columns fit their text
    right = {5, 6, 7}  # numbers align right
    for line in [(*head, "where    hardware"), *table]:
        cells = [f"{c:>{w}}" if i in right else f"{c:<{w}}" for i, (c, w) in enumerate(zip(line, widths))]
        print(" ".join(cells) + "  " + line[-1])
    for line in broken:
        print(line)
    return 0


# --- lpm predict ---------------------------------------------------------------------------------------
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
    from lpm_zoo.predictors.zoo import hardware_note
    from lpm_zoo.profiles import PROFILES

    p = get_predictor(args.predictor)
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
    hw_note = hardware_note(p, args.predictor)  # notes come once every input is valid: an error is one line
    if hw_note:
        note(hw_note)
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


fit_command = Command(help="fit a latency predictor on measured architectures and save it in the zoo",
                      configure=_configure_fit, run=_run_fit)
compare_command = Command(help="compare predictor types on a fixed held-out split (table and PNG plots)",
                          configure=_configure_compare, run=_run_compare)
zoo_command = Command(help="list the fitted latency predictors", configure=_configure_zoo, run=_run_zoo)
predict_command = Command(help="predict the latency of genotypes with a fitted predictor",
                          configure=_configure_predict, run=_run_predict)
