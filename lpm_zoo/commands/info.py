"""`lpm info`: parameters, multiply-adds and encoding of a genotype's evaluation network."""

from __future__ import annotations

import argparse
import json

from lpm_zoo.cli import Command
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("genotype", nargs="+", metavar="GENOTYPE",
                   help="a published name (DARTS_V2, PC_DARTS_cifar, PC_DARTS_image), a DARTS string, "
                        "JSON, or a .json file; without a reduction cell, DARTS_V2's is used")
    p.add_argument("--setting", choices=["cifar", "imagenet"], default="cifar",
                   help="evaluation network: cifar (C=36, 20 cells, 32x32) or imagenet (C=48, 14 cells, 224x224)")
    p.add_argument("--json", action="store_true", help="one JSON object per genotype")


def _run(args: argparse.Namespace) -> int:


    # A normal cell alone is completed with DARTS_V2's reduction cell, as in the measurement profiles.
    # All are parsed before any output, and before torch is imported (a bad genotype fails at once).
    from lpm_zoo.encoding import cell_key, encode, genotype_key

    genotypes = [(spec, parse_genotype(spec, DARTS_V2.reduce)) for spec in args.genotype]

    from lpm_zoo.complexity import genotype_complexity
    for spec, g in genotypes:
        stats = genotype_complexity(g, args.setting)
        bits = "".join(str(int(b)) for b in encode(g.normal))
        rbits = "".join(str(int(b)) for b in encode(g.reduce))
        if args.json:
            print(json.dumps({
                "genotype": spec if len(spec) < 40 else g.to_darts(),
                "setting": args.setting,
                "params_M": round(stats["params_M"], 6),
                "madds_M": round(stats["madds_M"], 3),
                "key": cell_key(g),
                "encoding": bits,
                "key_both": genotype_key(g),
                "encoding_both": bits + rbits,
                "darts": g.to_darts(),
            }))
        else:
            name = spec if len(spec) < 40 else cell_key(g)
            print(f"{name}  [{args.setting}]")
            print(f"  params   {stats['params_M']:.2f} M  (auxiliary head excluded)")
            print(f"  mult-add {stats['madds_M']:.0f} M")
            print(f"  normal   {', '.join(f'{op}<-{i}' for op, i in g.normal)}")
            print(f"  reduce   {', '.join(f'{op}<-{i}' for op, i in g.reduce)}")
            print(f"  encoding {' '.join(bits[k:k + 8] for k in range(0, len(bits), 8))}  (112 bits, the normal cell)")
            print(f"  reduce   {' '.join(rbits[k:k + 8] for k in range(0, len(rbits), 8))}  (with the above: the 224 "
                  "bits of the -both profiles)")
    return 0


command = Command(help="parameters, multiply-adds and encodings (112-bit normal cell, 224-bit both cells) of a genotype",
                  configure=_configure, run=_run)
