"""`lpm sweep`: the paper's experiments as one resumable command: a grid of searches (λ, seeds, predictors, noise,
methods, datasets), each found genotype trained and measured, on this machine or a Ray cluster; the results
table grows as trials finish, and the report (Pareto table, picture, claims) is written at the end."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path

from lpm_zoo.cli import Command, check_threads, int_list
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2, list_genotypes
from lpm_zoo.ray_cluster import ray_address
from lpm_zoo.search.options import DATASETS, METHODS
from lpm_zoo.search.sweep.grid import (
    AXES,
    MAX_RANDOM,
    NOISE_MAX,
    SEED_MAX,
    Grid,
    check_names,
    check_reference,
    float_list,
    lambda_spec,
    settle_grid,
    split_list,
    sweep_grid,
    write_json_atomic,
)
from lpm_zoo.search.sweep.preflight import check_folder, check_steps
from lpm_zoo.search.sweep.ray_runner import RayRunner, check_ray_address, device_resource
from lpm_zoo.search.sweep.report import write_report
from lpm_zoo.search.sweep.results import collect_rows
from lpm_zoo.search.sweep.reuse import plan_reuse, plan_reuse_searches, reuse_trials
from lpm_zoo.search.sweep.runner import LocalRunner, Sweep, stderr_log
from lpm_zoo.search.sweep.trial import lpm_prefix

#: search settings passed to every `lpm search` (flag, type, default): benchmarks/lambda_sweep.sh's SEARCH_FLAGS
SEARCH_FLAGS = (("--epochs", int, 5), ("--max-steps", int, 40), ("--channels", int, 4), ("--layers", int, 5),
                ("--batch-size", int, 32), ("--arch-lr", float, 3e-3), ("--lr", float, None),
                ("--samples", int, None), ("--estimator", str, None), ("--warmup-epochs", int, None),
                ("--partial-k", int, None), ("--max-skip", int, None), ("--stop-skip", int, None),
                ("--select", str, None), ("--select-images", int, None))
#: evaluation-training settings (`--train-X` becomes `lpm train --X`); unset: `lpm train`'s defaults for the task
TRAIN_FLAGS = (("--epochs", int), ("--max-steps", int), ("--channels", int), ("--layers", int), ("--batch-size", int),
               ("--lr", float), ("--cutout", int), ("--auxiliary-weight", float), ("--drop-path", float))
#: measurement protocol flags passed to every `lpm measure` (unset: its defaults)
MEASURE_FLAGS = (("--warmup", int), ("--rounds", int), ("--reps", int), ("--statistic", str))


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the sweep's folder: grid.json, trials/ID/ (one folder per trial), results.csv/.parquet, "
                        "report.md; rerun the same command to resume")
    g = p.add_argument_group("the grid (comma-separated values)")
    g.add_argument("--lambda", dest="lambdas", default="0,rel0.1,rel0.2,rel0.5", metavar="LIST",
                   help="λ values: a number is λ in 1/s, relX a relative λ (default 0,rel0.1,rel0.2,rel0.5); "
                        "none: no search, the references only")
    g.add_argument("--relative", action="store_true", help="every λ in --lambda is relative (0.5 means rel0.5)")
    g.add_argument("--seeds", default="0,1,2", metavar="LIST", help="seeds (default 0,1,2)")
    g.add_argument("--predictors", default="ort-cpu", metavar="LIST",
                   help="zoo names or predictor folders, `flops` predictors included (default ort-cpu)")
    g.add_argument("--noise", default="0", metavar="LIST", help="σ in ms added to every prediction (default 0)")
    g.add_argument("--methods", default="darts", metavar="LIST", help=f"of {', '.join(METHODS)} (default darts)")
    g.add_argument("--datasets", default="textures", metavar="LIST", help=f"of {', '.join(DATASETS)} (default textures)")
    g.add_argument("--references", default="DARTS_V2,PC_DARTS_cifar", metavar="LIST",
                   help="genotypes trained and measured the same way, per dataset and seed: published names or "
                        ".json genotype files, or none (default DARTS_V2,PC_DARTS_cifar)")
    g.add_argument("--random", type=int, default=0, metavar="N",
                   help="the random-search baseline: N genotypes (normal and reduction cell) drawn from the space, "
                        "each trained and measured like the references, per dataset and seed (default 0)")
    g.add_argument("--random-seed", type=int, default=0, metavar="S",
                   help="the sampler's seed for --random (default 0); the same S gives the same genotypes, and a "
                        "larger N with --extend adds genotypes after the first N")
    g.add_argument("--baseline-seeds", metavar="LIST",
                   help="the training seeds of the references and random cells (default: --seeds); e.g. 3 search "
                        "seeds against 20 random cells trained with 2 seeds each")
    g.add_argument("--extend", action="store_true",
                   help="add this grid's new values to the grid already in --out (only the new trials run)")
    g.add_argument("--reuse", action="append", default=[], metavar="DIR",
                   help="take the trials another sweep folder finished with the same settings instead of running "
                        "them again (e.g. Table 3's noise-free points from Table 4's sweep); repeatable")
    g.add_argument("--reuse-searches", action="append", default=[], metavar="DIR",
                   help="take only the searches another sweep folder finished with the same search settings; their "
                        "measurements and training run with this sweep's settings (a new evaluation protocol for "
                        "the same found cells); repeatable")
    s = p.add_argument_group("search (every `lpm search`; defaults: a few-minute CPU search)")
    for flag, typ, default in SEARCH_FLAGS:
        s.add_argument(flag, type=typ, default=default, help=f"lpm search {flag} (default {default or 'its own'})"
                       + ("; 0: every step of each epoch" if flag == "--max-steps" else ""))
    s.add_argument("--fused", action="store_true",
                   help="lpm search --fused: the per-input-state forward (same loss and gradients, faster)")
    s.add_argument("--anytime", metavar="LIST",
                   help="search epochs (each below --epochs) after which every λ = 0 search's cell (argmax α then) "
                        "is also trained and measured, like the final one: the budget curve of the report")
    t = p.add_argument_group("search and evaluation training")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads per search or training (default 1)")
    t.add_argument("--device", default="cpu", help="where searches and trainings run: cpu (default) or cuda[:N]")
    t.add_argument("--resolution", type=int, metavar="PX", help="image size (default: the task's)")
    t.add_argument("--data-dir", metavar="DIR", help="folder holding cifar-10-batches-bin/ (for cifar10)")
    for flag, typ in TRAIN_FLAGS:
        t.add_argument(f"--train-{flag[2:]}", type=typ, help=f"lpm train {flag} (default: lpm train's for the task)")
    m = p.add_argument_group("measurement of each found genotype")
    m.add_argument("--backend", default="ort", help="backend of `lpm measure` (default ort)")
    m.add_argument("--measure-device", default="cpu", help="device of `lpm measure` (default cpu)")
    m.add_argument("--profiles", default="cifar-b1,cifar-b1-both", metavar="LIST",
                   help="profiles measured: the normal cell in DARTS_V2's network (cifar-b1) and the whole found "
                        "network (cifar-b1-both) by default")
    m.add_argument("--db", action="append", default=[], metavar="PROFILE=STORE",
                   help="express PROFILE's latency in STORE's milliseconds (lpm measure --db), e.g. "
                        "cifar-b1=bundled:ort-cpu-cifar-b1; repeatable")
    for flag, typ in MEASURE_FLAGS:
        m.add_argument(flag, type=typ, help=f"lpm measure {flag} (default: its own)")
    r = p.add_argument_group("where trials run")
    r.add_argument("--jobs", type=int, metavar="N",
                   help="trials at a time (default 1 here; on Ray, the cluster's CPUs); measurements stay one at a "
                        "time per device")
    r.add_argument("--ray", metavar="ADDRESS", type=ray_address,
                   help="run steps as Ray tasks: local (a Ray started here) or a cluster address; measurements go "
                        "only to nodes declaring --device-resource")
    r.add_argument("--device-resource", metavar="NAME",
                   help="the Ray resource of the measuring node(s) (default lpm-device-<this host's CPU slug>)")
    p.add_argument("--report", action="store_true", help="write the report from the finished trials; run nothing")
    p.add_argument("--step-command", help=argparse.SUPPRESS)  # tests: the command that stands for `lpm`


def _flags(pairs: list[tuple[str, object]]) -> list[str]:
    out = []
    for flag, v in pairs:
        if v is not None:
            out += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    return out


def _reference(spec: str) -> list[str]:
    """[label, spec] of a reference genotype: a published name, or a .json genotype file (kept as its JSON)."""
    if spec in list_genotypes():
        return [spec, spec]
    if not spec.endswith(".json"):
        raise LpmError(f"--references: unknown {clip(spec, 40)} (a published name: {', '.join(list_genotypes())}; "
                       "or a .json genotype file)")
    try:
        g = parse_genotype(spec, DARTS_V2.reduce)
    except LpmError as e:
        raise LpmError(f"--references {clip(spec, 60)}: {e}") from None
    return check_reference(Path(spec).stem, json.dumps(g.to_dict(), separators=(",", ":")), "--references")


def build_grid(args: argparse.Namespace) -> Grid:
    """The grid and settings the arguments describe (every value checked; a bad one is one LpmError line)."""
    from lpm_zoo.predictors.zoo import predictor_path
    from lpm_zoo.profiles import get_profile

    lams = [] if args.lambdas.strip().lower() == "none" else list(dict.fromkeys(
        lambda_spec(v, args.relative) for v in split_list(args.lambdas, "--lambda")))
    seeds = list(dict.fromkeys(int_list(args.seeds, "--seeds", 0, SEED_MAX)))
    preds = split_list(args.predictors, "--predictors")
    for name in preds:
        predictor_path(name)  # an unknown name: its one-line error, before any trial
    noise = float_list(args.noise, "--noise", 0.0, NOISE_MAX)
    methods = check_names(split_list(args.methods, "--methods"), tuple(METHODS), "--methods")
    datasets = check_names(split_list(args.datasets, "--datasets"), DATASETS, "--datasets")
    if "cifar10" in datasets and not args.data_dir:
        raise LpmError("--datasets cifar10 needs --data-dir DIR (holding cifar-10-batches-bin/)")
    refs = [] if args.references.strip().lower() == "none" else [
        _reference(r) for r in split_list(args.references, "--references")]
    if not 0 <= args.random <= MAX_RANDOM:
        raise LpmError(f"--random must be between 0 and {MAX_RANDOM}, got {args.random}")
    if not 0 <= args.random_seed < 2**32:
        raise LpmError(f"--random-seed must be between 0 and 2^32-1, got {args.random_seed}")
    random = {"n": args.random, "seed": args.random_seed} if args.random else {}
    base = list(dict.fromkeys(int_list(args.baseline_seeds, "--baseline-seeds", 0, SEED_MAX))) \
        if args.baseline_seeds is not None else []
    if base and not (refs or random):
        raise LpmError("--baseline-seeds seeds the references and random cells; this grid has neither "
                       "(add --references or --random, or drop it)")
    base = [] if set(base) == set(seeds) else base  # the seed axis's own: grid.json as without the flag
    profiles = split_list(args.profiles, "--profiles")
    for prof in profiles:
        try:
            get_profile(prof)
        except (KeyError, ValueError, LpmError) as e:
            raise LpmError(f"--profiles: {e}") from None
    backends = sorted(e.name for e in entry_points(group="lpm_zoo.backends"))
    check_names([args.backend], backends, "--backend")
    db = {}
    for item in args.db:
        prof, sep, store = item.partition("=")
        if not sep or prof not in profiles or not store:
            raise LpmError(f"--db {clip(item, 60)}: expected PROFILE=STORE with PROFILE one of {', '.join(profiles)}")
        if not store.startswith("bundled:") and not Path(store).is_file():
            raise LpmError(f"--db {clip(item, 60)}: no measurement store at {clip(store, 80)}")
        db[prof] = store
    check_threads(args.threads)
    for flag, v in (("--jobs", args.jobs), *((f, getattr(args, f[2:].replace("-", "_"))) for f, *_ in SEARCH_FLAGS)):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise LpmError(f"{flag} must not be negative, got {v}")
    if args.jobs is not None and not 1 <= args.jobs <= 256:
        raise LpmError(f"--jobs must be between 1 and 256, got {args.jobs}")
    shared = _flags([("--threads", args.threads), ("--device", None if args.device == "cpu" else args.device),
                     ("--resolution", args.resolution), ("--data-dir", args.data_dir)])
    vals = {f: getattr(args, f[2:].replace("-", "_")) for f, *_ in SEARCH_FLAGS}
    if vals["--max-steps"] == 0:
        vals["--max-steps"] = None  # 0: no cap
    search = _flags(list(vals.items())) + (["--fused"] if args.fused else []) + shared
    train = _flags([(f, getattr(args, f"train_{f[2:].replace('-', '_')}")) for f, _ in TRAIN_FLAGS]) + shared
    measure = {"backend": args.backend, "device": args.measure_device, "profiles": profiles, "db": db,
               "flags": _flags([(f, getattr(args, f[2:])) for f, _ in MEASURE_FLAGS])}
    anytime = _anytime(args)
    if anytime and "0" not in lams:
        raise LpmError("--anytime trains the cells of λ = 0 searches; this grid has none (add 0 to --lambda)")
    if anytime and args.select == "perturbation":
        raise LpmError("--anytime takes argmax α's cell after each epoch; with --select perturbation the last point "
                       "would be another derivation: drop one of the two")
    axes = dict(zip(AXES, (methods, datasets, preds, lams, noise, seeds)))
    settings = {"search": search, "train": train, "measure": measure, **({"anytime": anytime} if anytime else {})}
    return Grid(axes, refs, settings, random, base, baseline_given=args.baseline_seeds is not None)


def _anytime(args: argparse.Namespace) -> list[int]:
    """--anytime's epochs, sorted, each from 1 to --epochs − 1 (the last epoch's cell is the search's own)."""
    if args.anytime is None:
        return []
    epochs = args.epochs if args.epochs is not None else 1
    if epochs < 2:
        raise LpmError(f"--anytime needs a search of at least 2 epochs (--epochs {epochs})")
    return sorted(set(int_list(args.anytime, "--anytime", 1, epochs - 1)))


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LpmError(f"--out {clip(args.out)} is not a folder")
    command = "lpm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["sweep"] else ""
    if args.report:
        grid = sweep_grid(out)
        check_folder(out, grid)
        path = write_report(out, collect_rows(out, grid.trials(), grid.settings), grid.settings, command)
        print(f"wrote {path}")
        return 0
    # every check first: a refused command leaves the disk as it was
    grid = build_grid(args)
    if args.ray is not None:
        check_ray_address(args.ray)
        resource = device_resource(args.device_resource)
    check_steps(grid, on_ray=args.ray is not None)
    grid, added, write_grid = settle_grid(out, grid, args.extend)
    check_folder(out, grid)
    plan = plan_reuse(out, grid, args.reuse, stderr_log) if args.reuse else []
    searches = (plan_reuse_searches(out, grid, args.reuse_searches, {c.trial.id for c in plan}, stderr_log)
                if args.reuse_searches else [])
    try:
        prefix = shlex.split(args.step_command) if args.step_command else lpm_prefix()
    except ValueError as e:
        raise LpmError(f"--step-command: {e}") from None
    if not prefix:
        raise LpmError("--step-command is empty")
    if args.ray is not None:  # joined before anything is created: a cluster that cannot be reached leaves no trace
        runner = RayRunner(args.ray, resource, args.jobs, prefix if args.step_command else None,
                           gpu=args.device.startswith("cuda"))
    else:
        runner = LocalRunner(args.jobs or 1, prefix)
    try:
        out.mkdir(parents=True, exist_ok=True)  # --out itself: the folder the user named
    except OSError as e:
        runner.close()
        raise LpmError(f"cannot create --out {clip(args.out)} ({e.strerror})") from None
    if write_grid:
        write_json_atomic(out / "grid.json", grid.to_json())
    if args.extend and added:
        stderr_log(f"extended the grid in {out}: {added} new trials")
    if args.reuse:
        reused = reuse_trials(out, plan)
        stderr_log(f"reused {len(reused)} finished trials from {', '.join(clip(r, 60) for r in args.reuse)}")
    if args.reuse_searches:
        reused = reuse_trials(out, searches)
        stderr_log(f"reused the searches of {len(reused)} trials from "
                   f"{', '.join(clip(r, 60) for r in args.reuse_searches)}; their measurements and training run here")
    sweep = Sweep(out, grid, runner, stderr_log)
    summary = sweep.run()
    rows = collect_rows(out, sweep.trials, grid.settings)
    path = write_report(out, rows, grid.settings, command) if rows else None
    for line in summary["failed"]:
        stderr_log(f"failed: {line}")
    for line in summary["busy"]:
        stderr_log(f"running in another sweep: {line}")
    status = sweep.status()
    print(f"{len(status.get('done', []))} of {summary['trials']} trials done ({summary['done']} now); "
          f"results in {out / 'results.csv'}" + (f"; report {path}" if path else ""))
    if summary["interrupted"]:
        stderr_log("interrupted: every step saved; run the same command to resume")
        return 130
    return 1 if summary["failed"] else 0


command = Command(help="a resumable grid of latency-aware searches, each trained and measured; Pareto report",
                  configure=_configure, run=_run,
                  description="Run the paper's sweeps (λ, seeds, predictors, noise, methods, datasets) as one "
                              "resumable command, locally (--jobs) or on Ray (--ray), with the Pareto report at the end.")
