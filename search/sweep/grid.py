"""A sweep's grid: the axes (λ, seeds, predictors, noise, methods, datasets), the reference genotypes, and the
settings every trial shares (search, evaluation training, measurement), as plain data kept in DIR/grid.json.

A trial is one point of the grid and one seed; its id names its folder. λ = 0 trials do not depend on the predictor
or the noise (the latency term has no weight), so there is one per method, dataset and seed, run with the first
predictor and no noise. A reference trial trains and measures a published genotype the same way, one per dataset
and seed; a random trial does so for one of `random.n` genotypes drawn from the space with `random.seed` (the
random-search baseline). The baselines (references and random cells) train with the seed axis's seeds, or with
`baseline_seeds` when the grid names them (say 3 search seeds against 2 training seeds of 20 random cells).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import read_own_json, refuse_link, write_atomic
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2, list_genotypes
from lpm_zoo.search.options import DATASETS, METHODS
from lpm_zoo.search.sweep.checks import AFTER, bad, integer, obj, strings, text

GRID_VERSION = 1
AXES = ("method", "dataset", "predictor", "lambda", "noise", "seed")
MAX_TRIALS = 10_000
MAX_RANDOM = 1_000
MAX_LAMBDA = {True: 1e3, False: 1e6}  # as `lpm search` (lpm_zoo.search.searcher.MAX_LAMBDA), without importing torch


def lambda_spec(text: str, relative: bool = False) -> str:
    """A λ value as the sweep writes it: '0', '0.2' (1/s) or 'rel0.5' (relative); `relative` makes a bare number relative."""
    t = text.strip()
    rel = relative or t.startswith("rel")
    num = t[3:] if t.startswith("rel") else t
    try:
        v = float(num) if len(num) <= 30 else float("nan")
    except ValueError:
        v = float("nan")
    if not math.isfinite(v) or not 0 <= v <= MAX_LAMBDA[rel]:
        raise LpmError(f"--lambda {clip(text, 40)}: expected a number in [0, {MAX_LAMBDA[rel]:g}] "
                       f"({'relative' if rel else '1/s'}), or relX for a relative λ")
    if v == 0:
        return "0"
    return f"rel{v:g}" if rel else f"{v:g}"


def lambda_value(spec: str) -> tuple[float, bool]:
    """(λ, relative) of a spec written by `lambda_spec`."""
    return (float(spec[3:]), True) if spec.startswith("rel") else (float(spec), False)


def split_list(text: str, flag: str) -> list[str]:
    """A flag's comma-separated values (1 to 100), stripped, duplicates dropped in order."""
    vals = [v.strip() for v in text.split(",") if v.strip()]
    if not 1 <= len(vals) <= 100:
        raise LpmError(f"{flag} {clip(text, 60)}: expected 1 to 100 comma-separated values")
    return list(dict.fromkeys(vals))


def float_list(text: str, flag: str, lo: float = 0.0, hi: float = 1e6) -> list[float]:
    """A flag's comma-separated finite numbers in [lo, hi]."""
    out = []
    for v in split_list(text, flag):
        try:
            x = float(v) if len(v) <= 30 else float("nan")
        except ValueError:
            x = float("nan")
        out.append(check_float(x, flag, lo, hi, v))
    return list(dict.fromkeys(out))


def check_float(x: Any, flag: str, lo: float, hi: float, shown: Any = None) -> float:
    """`x` as a float when it is a finite number in [lo, hi] (not a bool); else one LpmError line naming `flag`."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (math.isfinite(x) and lo <= x <= hi):
        raise LpmError(f"{flag}: {clip(x if shown is None else shown, 40)} is not a number in [{lo:g}, {hi:g}]")
    return float(x)


def slug(name: str) -> str:
    """A folder-safe name for a predictor or genotype name (a path gets its last part and a short hash)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rstrip("/").rsplit("/", 1)[-1])[:40].strip("._") or "x"
    if s != name:
        s += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return s


@dataclass(frozen=True)
class Trial:
    """One trial: a search (or a reference genotype), its evaluation training and its measurements."""

    id: str
    method: str | None
    dataset: str
    predictor: str | None
    lam: str | None
    noise: float
    seed: int
    reference: str | None = None  # a reference genotype's label
    reference_spec: str | None = None  # and what `lpm train/measure --genotype` takes: a published name or JSON
    kind: str = "search"  # search, reference (a published or given genotype) or random (a sampled one)

    def as_row(self) -> dict[str, Any]:
        """The trial's grid coordinates as a results-table row (λ split into value and mode)."""
        lam, rel = lambda_value(self.lam) if self.lam is not None else (None, None)
        return {"trial": self.id, "kind": self.kind, "method": self.method,
                "dataset": self.dataset, "predictor": self.predictor, "lambda": self.lam, "lambda_value": lam,
                "relative": rel, "noise": self.noise, "seed": self.seed, "reference": self.reference}

    @property
    def point(self) -> str:
        """The grid point without the seed: trials that differ only by seed share it."""
        return self.id.rsplit("-s", 1)[0]


@dataclass
class Grid:
    """The axes, the reference genotypes and the shared settings of a sweep."""

    axes: dict[str, list] = field(default_factory=dict)
    references: list[list[str]] = field(default_factory=list)  # [label, published name or genotype JSON]
    settings: dict[str, Any] = field(default_factory=dict)
    random: dict[str, int] = field(default_factory=dict)  # {"n": genotypes, "seed": sampler seed}, or empty
    baseline_seeds: list[int] = field(default_factory=list)  # the references' and random cells' seeds; empty: axis's
    baseline_given: bool = field(default=False, compare=False)  # the command named --baseline-seeds (not kept)

    def to_json(self) -> dict[str, Any]:
        """grid.json's content."""
        return {"version": GRID_VERSION, "axes": {a: self.axes[a] for a in AXES}, "references": self.references,
                "settings": self.settings, **({"random": self.random} if self.random else {}),
                **({"baseline_seeds": self.baseline_seeds} if self.baseline_seeds else {})}

    @classmethod
    def from_json(cls, data: Any, where: str = "grid.json", named: Grid | None = None) -> Grid:
        """The grid `to_json` wrote, every value checked as strictly as the same value typed on the command line
        (`check_grid`); anything else is one LpmError line."""
        return check_grid(data, where, named)

    def training(self) -> tuple[tuple[tuple, tuple], str]:
        """How the sweep trains apart from its length (its datasets and `lpm train` flags less `--epochs`), and that
        `--epochs` ("the default" when not given): networks of two sweeps compare only when the first part agrees."""
        flags = list(self.settings.get("train", []))
        epochs = "the default"
        if "--epochs" in flags:
            i = flags.index("--epochs")
            epochs = str(flags[i + 1])
            del flags[i:i + 2]
        return (tuple(self.axes.get("dataset", [])), tuple(flags)), epochs

    def trials(self) -> list[Trial]:
        """Every trial of the grid in run order (seed-major, λ = 0 first), each once; the references last per seed."""
        a = self.axes
        base = self.trained_baseline_seeds()
        out: dict[str, Trial] = {}
        for seed in a["seed"] + [s for s in base if s not in a["seed"]]:
            for dataset in a["dataset"]:
                for method in a["method"] if seed in a["seed"] else []:
                    for lam in sorted(a["lambda"], key=lambda s: s != "0"):
                        for pred in a["predictor"]:
                            for noise in a["noise"]:
                                if lam == "0":
                                    pred, noise = a["predictor"][0], 0.0
                                tid = f"{method}-{dataset}-{slug(pred)}-{lam}-n{noise:g}-s{seed}"
                                out.setdefault(tid, Trial(tid, method, dataset, pred, lam, float(noise), int(seed)))
                for label, spec in self.references if seed in base else []:
                    tid = f"ref-{slug(label)}-{dataset}-s{seed}"
                    out.setdefault(tid, Trial(tid, None, dataset, None, None, 0.0, int(seed), label, spec, "reference"))
                for label, spec in self.random_genotypes() if seed in base else []:
                    tid = f"{label}-{dataset}-s{seed}"
                    out.setdefault(tid, Trial(tid, None, dataset, None, None, 0.0, int(seed), label, spec, "random"))
        if len(out) > MAX_TRIALS:
            raise LpmError(f"the grid has {len(out)} trials; at most {MAX_TRIALS}")
        return list(out.values())

    def random_genotypes(self) -> list[tuple[str, str]]:
        """(label, genotype JSON) of the random baseline's genotypes: `random.n` drawn with `random.seed`."""
        if not self.random:
            return []
        from lpm_zoo.sampler import sample_random_genotypes

        n, seed = self.random["n"], self.random["seed"]
        return [(f"rand{seed}-{i:03d}", json.dumps(g.to_dict(), separators=(",", ":")))
                for i, g in enumerate(sample_random_genotypes(n, seed))]

    def merged(self, old: Grid) -> Grid:
        """`old` extended by this grid's new axis values, references and random genotypes (old ones first, in their
        order; more random genotypes with the same sampler seed extend the list, whose first ones stay the same)."""
        axes = {a: old.axes[a] + [v for v in self.axes[a] if v not in old.axes[a]] for a in AXES}
        refs = old.references + [r for r in self.references if r not in old.references]
        random = old.random
        if self.random and (not old.random or (self.random["seed"] == old.random["seed"]
                                               and self.random["n"] > old.random["n"])):
            random = self.random
        had = old.trained_baseline_seeds()
        # without --baseline-seeds, baselines kept to their own seeds stay so (more search seeds add no baselines)
        adds = self.trained_baseline_seeds() if self.baseline_given or not old.baseline_seeds else []
        base = had + [s for s in adds if s not in had]  # extending never drops a trial
        return Grid(axes, refs, old.settings, random, [] if base == axes["seed"] else base)

    def trained_baseline_seeds(self) -> list[int]:
        """The seeds the references and random cells train with: none when the grid has no baseline."""
        if not (self.references or self.random):
            return []
        return self.baseline_seeds or self.axes["seed"]


def check_random(random: dict[str, Any]) -> dict[str, int]:
    """The random baseline's {"n", "seed"} checked (n in 1..MAX_RANDOM, seed a 32-bit unsigned int), or {} for none."""
    if not random:
        return {}
    n, seed = random.get("n"), random.get("seed")
    if set(random) != {"n", "seed"} or not all(type(v) is int for v in (n, seed)):
        raise ValueError("random: expected {n, seed} integers")
    if not (1 <= n <= MAX_RANDOM and 0 <= seed < 2**32):
        raise ValueError(f"random: n in 1..{MAX_RANDOM} and seed in 0..2^32-1")
    return {"n": n, "seed": seed}


def read_grid(out: Path, named: Grid | None = None) -> Grid | None:
    """The grid in `out`/grid.json, checked (`check_grid`); None when there is none."""
    path = out / "grid.json"
    if not refuse_link(path):
        return None
    try:
        data = read_own_json(path)
    except OSError as e:
        raise LpmError(f"cannot read {clip(str(path))} ({e.strerror or type(e).__name__}); use another --out") from None
    return Grid.from_json(data, str(path), named)


def sweep_grid(folder: Path) -> Grid:
    """The grid of the sweep folder `folder`, checked; one LpmError line when the folder holds no sweep."""
    grid = read_grid(folder) if folder.is_dir() else None
    if grid is None:
        raise LpmError(f"{clip(str(folder))} holds no sweep (no grid.json)")
    return grid


def settle_grid(out: Path, grid: Grid, extend: bool) -> tuple[Grid, int, bool]:
    """The grid to run in `out`: this one on the first run; the same grid again; or, with `extend`, the old one
    plus this one's new values. Returns (grid, number of trials added, whether grid.json is to be written); writes
    nothing. A different grid is one LpmError line."""
    old = read_grid(out, grid) if out.is_dir() else None
    if old is None:
        return grid, len(grid.trials()), True
    if old.to_json() == grid.to_json():
        return old, 0, False
    if old.settings != grid.settings:
        diff = sorted(k for k in set(old.settings) | set(grid.settings) if old.settings.get(k) != grid.settings.get(k))
        raise LpmError(f"{clip(str(out))} holds a sweep with other settings ({', '.join(diff)[:160]}); "
                       "give the same settings, or use another --out")
    new = grid.merged(old)
    added = len(new.trials()) - len(old.trials())
    if not extend:
        diff = [a for a in AXES if old.axes[a] != grid.axes[a]] + (["references"] if old.references != grid.references
                                                                    else []) + (["random"] if old.random != grid.random
                                                                                else []) \
            + (["baseline seeds"] if old.baseline_seeds != grid.baseline_seeds else [])
        raise LpmError(f"{clip(str(out))} holds another grid (it differs in {', '.join(diff)}); "
                       f"add --extend to add the {added} new trials, or use another --out")
    return new, added, bool(added or new.to_json() != old.to_json())


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` through a temporary file and a rename (never through a link)."""
    write_atomic(path, (json.dumps(data, indent=1, allow_nan=False) + "\n").encode())


# --- grid.json read back: each value checked as the command line checks it ------------------------------
SEED_MAX = 2**32 - 1
NOISE_MAX = 1e4
_FLAGS = {"method": "--methods", "dataset": "--datasets", "predictor": "--predictors", "lambda": "--lambda",
          "noise": "--noise", "seed": "--seeds"}


def check_names(vals: list[str], known: tuple[str, ...] | list[str], flag: str) -> list[str]:
    """`vals` when each is one of `known` (else one LpmError line naming `flag`)."""
    bad = [v for v in vals if v not in known]
    if bad:
        raise LpmError(f"{flag}: unknown {clip(bad[0], 40)} (choose from {', '.join(known)})")
    return vals


def check_reference(label: Any, spec: Any, where: str) -> list[str]:
    """A reference as grid.json keeps it: [name, name] of a published genotype, or [label, its genotype as JSON]
    (the JSON the sweep wrote from the file the user named; never a path to open)."""
    text(label, where, "a reference's label", 100)
    text(spec, where, "a reference", 20_000)
    if spec in list_genotypes():
        if label != spec:
            raise bad(where, f"reference {clip(spec, 40)} is labelled {clip(label, 40)}")
        return [label, spec]
    if not spec.startswith("{"):
        raise bad(where, f"reference {clip(spec, 40)} is neither a published name nor a genotype's JSON")
    try:
        g = parse_genotype(spec, DARTS_V2.reduce, allow_path=False)
    except LpmError as e:
        raise bad(where, f"reference {clip(label, 40)}: {e}") from None
    if json.dumps(g.to_dict(), separators=(",", ":")) != spec:
        raise bad(where, f"reference {clip(label, 40)} is not a genotype as lpm sweep writes it")
    return [label, spec]


def _check_predictor(name: str, where: str, named: Grid | None) -> str:
    """A predictor read from grid.json for a run (`named`: this command's grid): one this command names, or a zoo
    name (never a folder the file names). Without `named` (a report, a --reuse source) it is a label only."""
    from lpm_zoo.predictors.zoo import list_predictors

    if named is None or name in named.axes.get("predictor", []):
        return name
    if name not in list_predictors():
        raise bad(where, f"predictor {clip(name, 60)} is not a zoo name (a predictor folder is used only when "
                         "--predictors names it)")
    return name


def check_axes(axes: dict[str, list], where: str, named: Grid | None = None) -> dict[str, list]:
    """The axes of grid.json, each value as the command line's flag checks it."""
    out = {}
    for a in AXES:
        vals = axes.get(a)
        if not isinstance(vals, list) or not (a == "lambda" or 1 <= len(vals) <= 100) or len(vals) > 100 \
                or len({json.dumps(v) for v in vals}) != len(vals):
            raise bad(where, f"axes.{a} is not a list of 1 to 100 distinct values")
        flag = _FLAGS[a]
        if a in ("method", "dataset", "predictor", "lambda"):
            vals = [text(v, where, f"axes.{a}", 400) for v in vals]
        if a == "method":
            check_names(vals, tuple(METHODS), flag)
        elif a == "dataset":
            check_names(vals, DATASETS, flag)
        elif a == "predictor":
            vals = [_check_predictor(v, where, named) for v in vals]
        elif a == "lambda":
            if any(lambda_spec(v) != v for v in vals):
                raise bad(where, "axes.lambda holds a value lpm sweep does not write")
        elif a == "noise":
            vals = [check_float(v, flag, 0.0, NOISE_MAX) for v in vals]
        else:
            vals = [integer(v, where, "axes.seed", 0, SEED_MAX) for v in vals]
        out[a] = vals
    return out


def check_settings(settings: Any, where: str) -> dict[str, Any]:
    """The shared settings of grid.json: lists of flags for search and training, the measurement's backend,
    device, known profiles, stores per profile and flags. (Running with them needs the command line to give
    the same settings, so each value is then also checked as that flag.)"""
    from lpm_zoo.profiles import get_profile

    s = obj(settings, where, "settings")
    if not {"search", "train", "measure"} <= set(s) <= {"search", "train", "measure", "anytime"}:
        raise bad(where, "settings hold other keys than search, train, measure and anytime")
    m = obj(s["measure"], where, "settings.measure")
    if set(m) != {"backend", "device", "profiles", "db", "flags"}:
        raise bad(where, "settings.measure holds other keys than backend, device, profiles, db and flags")
    profiles = strings(m["profiles"], where, "settings.measure.profiles", 100, 100)
    for p in profiles:
        try:
            get_profile(p)
        except (KeyError, ValueError, LpmError):
            raise bad(where, f"settings.measure.profiles: unknown profile {clip(p, 40)}") from None
    db = obj(m["db"], where, "settings.measure.db")
    for k, v in db.items():
        text(k, where, "settings.measure.db's profile", 100, tuple(profiles))
        text(v, where, "settings.measure.db's store", 400)
    anytime = s.get("anytime", [])
    if not isinstance(anytime, list) or ("anytime" in s and not 1 <= len(anytime) <= 100):
        raise bad(where, "settings.anytime is not a list of 1 to 100 epochs")
    anytime = [integer(e, where, "settings.anytime's epoch", 1, 10**6) for e in anytime]
    if anytime != sorted(set(anytime)):
        raise bad(where, "settings.anytime's epochs are not sorted and distinct")
    return {"search": strings(s["search"], where, "settings.search"),
            "train": strings(s["train"], where, "settings.train"),
            "measure": {"backend": text(m["backend"], where, "settings.measure.backend", 100),
                        "device": text(m["device"], where, "settings.measure.device", 100),
                        "profiles": profiles, "db": db, "flags": strings(m["flags"], where, "settings.measure.flags")},
            **({"anytime": anytime} if anytime else {})}


def check_grid(data: Any, where: str, named: Grid | None = None) -> Grid:
    """grid.json's content as a Grid, every value checked (`check_axes`, `check_reference`, `check_settings`) and
    the number of trials capped, before anything is created or run; `named` is the grid of the command that will
    run it (the predictor folders it names), None when the grid is only read (a report, a --reuse source)."""
    d = obj(data, where)
    if d.get("version") != GRID_VERSION or not {"version", "axes", "references", "settings"} <= set(d) \
            or not set(d) <= {"version", "axes", "references", "settings", "random", "baseline_seeds"}:
        raise LpmError(f"{clip(where)} is not a sweep grid (version {clip(d.get('version'), 20)}); use another --out")
    try:
        axes = check_axes(obj(d["axes"], where, "axes"), where, named)
        refs = d["references"]
        if not isinstance(refs, list) or len(refs) > 100 or any(not isinstance(r, list) or len(r) != 2 for r in refs):
            raise bad(where, "references is not a list of [label, genotype] pairs")
        refs = [check_reference(label, spec, where) for label, spec in refs]
        if len({slug(label) for label, _ in refs}) != len(refs):
            raise bad(where, "two references share a label")
        try:
            random = check_random(dict(obj(d.get("random") or {}, where, "random")))
        except ValueError as e:
            raise bad(where, str(e)) from None
        base = d.get("baseline_seeds", [])
        if not isinstance(base, list) or len(base) > 100 or len(set(map(json.dumps, base))) != len(base):
            raise bad(where, "baseline_seeds is not a list of at most 100 distinct seeds")
        base = [integer(v, where, "baseline_seeds", 0, SEED_MAX) for v in base]
        grid = Grid(axes, refs, check_settings(d["settings"], where), random, base)
    except LpmError as e:
        what = str(e).removeprefix(f"{clip(where)}: ").removesuffix(AFTER)
        raise LpmError(f"{clip(where)} is not a sweep grid ({what}); use another --out") from None
    grid.trials()  # at most MAX_TRIALS
    return grid
