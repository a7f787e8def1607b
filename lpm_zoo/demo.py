"""`make demo`: the published cells and a few sampled ones through `lpm info` (the search issue replaces this)."""

from __future__ import annotations

import sys

from lpm_zoo.cli import main as lpm


def main() -> int:
    from lpm_zoo.sampler import sample_genotypes

    print("== published cells, CIFAR setting ==", flush=True)
    lpm(["info", "DARTS_V2", "PC_DARTS_cifar", "PC_DARTS_image"])
    print("\n== three sampled cells (seed 0) ==", flush=True)
    lpm(["info", *(g.to_json() for g in sample_genotypes(3, seed=0))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
