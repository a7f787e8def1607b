"""Issue 34's point 3: has the evaluation's ranking converged? The networks trained with the short protocol (one or
more sweep folders) are paired, by genotype and training seed, with the same networks trained 3x as long (one or
more other sweep folders, `lpm sweep --train-epochs 30`), and the two rankings compared with Kendall's τ (target
≥ 0.8). A network trained in two folders of one side counts once, the first folder's.

    python -m benchmarks.evaluation_convergence --short runs/claim-random runs/claim-search \\
        --long runs/claim-converged

Every folder is read as untrusted input by `lpm sweep`'s own reader (grid and rows checked and recomputed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scipy.stats import kendalltau

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.published import list_genotypes
from lpm_zoo.search.sweep.claims import claim_rows
from lpm_zoo.search.sweep.grid import Grid, sweep_grid
from lpm_zoo.search.sweep.results import collect_rows, profile_column

#: the ranking agrees with the long run's when Kendall's τ is at least this
TAU_TARGET = 0.8


def check_same_protocol(grids: dict[Path, Grid], short: list[Path], long: list[Path]) -> None:
    """Refuse folders whose training differs in anything but its length (or, on one side, in anything at all), and
    short folders as long as the long ones: the comparison would mean nothing."""
    want, long_epochs = grids[long[0]].training()
    for side in (short, long):
        side_epochs = grids[side[0]].training()[1]
        for folder in side:
            got, epochs = grids[folder].training()
            if got != want:
                raise LpmError(f"{folder} trains with {clip(got)}, {long[0]} with {clip(want)}: the short and the "
                               "long runs must differ in --train-epochs only")
            if epochs != side_epochs:
                raise LpmError(f"{folder} trains for {epochs[:20]} epochs, {side[0]} for {side_epochs[:20]}: the "
                               "folders of one side must train alike")
            if side is short and epochs == long_epochs:
                raise LpmError(f"{folder} and {long[0]} both train for {epochs[:20]} epochs: give the long run's "
                               "sweep --train-epochs 3x the short one's")


def accuracies(folder: Path, grid: Grid) -> dict[tuple[str, int], tuple[str, float]]:
    """(genotype, training seed) -> (label, test accuracy in %) of every finished, trained network in a sweep."""
    rows = collect_rows(folder, grid.trials(), grid.settings)
    out = {}
    for r in rows:
        for c in claim_rows([r], profile_column("cifar-b1-both")):  # none when the row has no test accuracy
            label = c["genotype"] if c["genotype"] in list_genotypes() else (
                f"{r['kind']} {r.get('reference') or 'λ ' + str(r.get('lambda'))}")
            out[(c["genotype"], int(c["train_seed"]))] = (label, 100 * c["test_acc"])  # a published name or DARTS string
    return out


def compare(short: dict, long: dict) -> tuple[list[tuple[str, int, float, float]], float]:
    """The networks in both, (label, seed, short %, long %) sorted by the long run, and Kendall's τ between the two."""
    both = [(long[k][0], k[1], short[k][1], long[k][1]) for k in long if k in short]
    both.sort(key=lambda t: -t[3])
    tau = kendalltau([t[2] for t in both], [t[3] for t in both]).statistic if len(both) >= 3 else float("nan")
    return both, float(tau)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except LpmError as e:  # a folder that is not a sweep, or one that does not pass its checks: one line
        print(f"evaluation_convergence: error: {e}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", type=Path, nargs="+", required=True, help="sweep folders of the short protocol")
    p.add_argument("--long", type=Path, nargs="+", required=True, help="sweep folders of the 3x longer training")
    args = p.parse_args(argv)
    grids = {folder: sweep_grid(folder) for folder in [*args.short, *args.long]}
    check_same_protocol(grids, args.short, args.long)
    short, long = ({}, {})
    for side, folders in ((short, args.short), (long, args.long)):
        for folder in folders:  # a network trained in two of them: the first folder's training counts
            side.update({k: v for k, v in accuracies(folder, grids[folder]).items() if k not in side})
    both, tau = compare(short, long)
    print("| network | training seed | short | 3x as long |\n|---|---|---|---|")
    for label, seed, a, b in both:
        print(f"| {label} | {seed} | {a:.2f}% | {b:.2f}% |")
    verdict = "PASS" if tau >= TAU_TARGET else "FAIL"
    print(f"\n{len(both)} networks in both; Kendall τ between the rankings {tau:.3f}: {verdict} (target ≥ {TAU_TARGET})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
