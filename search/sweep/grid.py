"""A sweep's grid: the axes (λ, seeds, predictors, noise, methods, datasets), the reference genotypes, and the
settings every trial shares (search, evaluation training, measurement), as plain data kept in DIR/grid.json.

A trial is one point of the grid and one seed; its id names its folder. λ = 0 trials do not depend on the predictor
or the noise (the latency term has no weight), so there is one per method, dataset and seed, run with the first
predictor and no noise. A reference trial trains and measures a published genotype the same way, one per dataset
and seed; a random trial does so for one of `random.n` genotypes drawn from the space with `random.seed` (the
random-search baseline).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip

GRID_VERSION = 1
AXES = ("method", "dataset", "predictor", "lambda", "noise", "seed")
MAX_TRIALS = 10_000
MAX_RANDOM = 1_000
MAX_LAMBDA = {True: 1e3, False: 1e6}  # as `lpm search` (search.searcher.MAX_LAMBDA), without importing torch


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
        if not (math.isfinite(x) and lo <= x <= hi):
            raise LpmError(f"{flag}: {clip(v, 40)} is not a number in [{lo:g}, {hi:g}]")
        out.append(x)
    return list(dict.fromkeys(out))


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

    def to_json(self) -> dict[str, Any]:
        """grid.json's content."""
        return {"version": GRID_VERSION, "axes": {a: self.axes[a] for a in AXES}, "references": self.references,
                "settings": self.settings, **({"random": self.random} if self.random else {})}

    @classmethod
    def from_json(cls, data: Any, where: str = "grid.json") -> Grid:
        """The grid `to_json` wrote (a foreign or torn file is one LpmError line)."""
        try:
            if data.get("version") != GRID_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            axes = {a: list(data["axes"][a]) for a in AXES}
            refs = [[str(label), str(spec)] for label, spec in data["references"]]
            settings = dict(data["settings"])
            random = check_random(dict(data.get("random") or {}))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise LpmError(f"{clip(where)} is not a sweep grid ({clip(e, 80)}); use another --out") from None
        return cls(axes, refs, settings, random)

    def trials(self) -> list[Trial]:
        """Every trial of the grid in run order (seed-major, λ = 0 first), each once; the references last per seed."""
        a = self.axes
        out: dict[str, Trial] = {}
        for seed in a["seed"]:
            for dataset in a["dataset"]:
                for method in a["method"]:
                    for lam in sorted(a["lambda"], key=lambda s: s != "0"):
                        for pred in a["predictor"]:
                            for noise in a["noise"]:
                                if lam == "0":
                                    pred, noise = a["predictor"][0], 0.0
                                tid = f"{method}-{dataset}-{slug(pred)}-{lam}-n{noise:g}-s{seed}"
                                out.setdefault(tid, Trial(tid, method, dataset, pred, lam, float(noise), int(seed)))
                for label, spec in self.references:
                    tid = f"ref-{slug(label)}-{dataset}-s{seed}"
                    out.setdefault(tid, Trial(tid, None, dataset, None, None, 0.0, int(seed), label, spec, "reference"))
                for label, spec in self.random_genotypes():
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
        return Grid(axes, refs, old.settings, random)


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


def settle_grid(out: Path, grid: Grid, extend: bool) -> tuple[Grid, int]:
    """The grid to run in `out`: written there on the first run; the same grid again; or, with `extend`, the old one
    plus this one's new values. Returns (grid, number of trials added). A different grid is one LpmError line."""
    path = out / "grid.json"
    if not path.exists():
        write_json_atomic(path, grid.to_json())
        return grid, len(grid.trials())
    try:
        old = Grid.from_json(json.loads(path.read_text()), str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LpmError(f"cannot read {clip(str(path))} ({type(e).__name__}); use another --out") from None
    if old.to_json() == grid.to_json():
        return old, 0
    if old.settings != grid.settings:
        diff = sorted(k for k in set(old.settings) | set(grid.settings) if old.settings.get(k) != grid.settings.get(k))
        raise LpmError(f"{clip(str(out))} holds a sweep with other settings ({', '.join(diff)[:160]}); "
                       "give the same settings, or use another --out")
    new = grid.merged(old)
    added = len(new.trials()) - len(old.trials())
    if not extend:
        diff = [a for a in AXES if old.axes[a] != grid.axes[a]] + (["references"] if old.references != grid.references
                                                                    else []) + (["random"] if old.random != grid.random
                                                                                else [])
        raise LpmError(f"{clip(str(out))} holds another grid (it differs in {', '.join(diff)}); "
                       f"add --extend to add the {added} new trials, or use another --out")
    if added or new.to_json() != old.to_json():
        write_json_atomic(path, new.to_json())
    return new, added


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` through a temporary file and a rename (a reader never sees half a file)."""
    write_bytes_atomic(path, (json.dumps(data, indent=1, allow_nan=False) + "\n").encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
