"""How lpm adapt's choice compares with other rules: `python benchmarks/adapt_rules.py "TARGET<SOURCE,..." N DRAWS`.

For each target<source pair of bundled devices, on N cells (DRAWS random draws, and the first N
calibration cells where the store has them), the held-out MRE / Kendall tau / share within +-10%
of: the shipped rule (fine-tuning only when its CV error is 5% below the linear map's), other
thresholds, the linear map or fine-tuning alone, a plain scale, and the mean of the two. The
split and scoring are `lpm transfer`'s (BENCHMARKS.md, "Leave-one-device-out").
"""

import sys
from pathlib import Path

import numpy as np

from lpm_zoo.adaptation.finetune import choose_recipe, finetune
from lpm_zoo.adaptation.methods import FINETUNE_MARGIN, Design, adapt_fit, adapt_predict, choose_method
from lpm_zoo.adaptation.transfer import TransferTarget, devices_in, metric_scores
from lpm_zoo.predictors.registry import create_predictor
from lpm_zoo.store import Target, load_dataset

if len(sys.argv) != 4:
    sys.exit(__doc__.splitlines()[0])
stores = sorted(Path(__file__).resolve().parents[1].glob("lpm_zoo/data/measurements/*.db.gz"))
devs = {d.name: d for d in devices_in(["bundled:" + f.name[: -len(".db.gz")] for f in stores])}
pairs = [a.split("<") for a in sys.argv[1].split(",")]
N, DRAWS = int(sys.argv[2]), int(sys.argv[3])
sources: dict = {}
for tname, sname in pairs:
    if sname not in sources:
        d = devs[sname]
        data = load_dataset(d.db, Target(d.backend, d.device, d.profile))
        sources[sname] = create_predictor("mlp-plus").fit((data.ops, data.inputs), data.latency_ms)
    src = sources[sname]
    tgt = TransferTarget(devs[tname], None, 0, 100)
    S = src.predict(tgt.X(np.arange(len(tgt.data))))[:, None]
    rng = np.random.default_rng(1)
    draws = [("random", rng.choice(tgt.pool, N, replace=False)) for _ in range(DRAWS)]
    if len(tgt.calibration) >= N:
        draws.append(("calibration", np.array(tgt.calibration[:N])))
    yt, test = tgt.y[tgt.test], (S[tgt.test], tgt.madds[tgt.test], tgt.counts[tgt.test])
    results: dict = {}
    for kind, idx in draws:
        cols, y = (S[idx], tgt.madds[idx], tgt.counts[idx]), tgt.y[idx]
        design, table = choose_method(*cols, y)
        chosen_loo = next(r for r in table if r["chosen"])["loo_mre_pct"]
        best_loo = min(r["loo_mre_pct"] for r in table)
        recipe, _ = choose_recipe(src, *tgt.X(idx), y)
        p_lin = adapt_predict(adapt_fit(*cols, y, design=design), *test)
        mode = recipe["method"].split("-", 1)[1]
        p_ft = finetune(src, *tgt.X(idx), y, mode, recipe["lambda"]).predict(tgt.X(tgt.test))
        p_head = finetune(src, *tgt.X(idx), y, "head", 1.0).predict(tgt.X(tgt.test))
        p_scale = adapt_predict(adapt_fit(*cols, y, design=Design("scale", 0.0)), *test)
        rules = {
            f"shipped({FINETUNE_MARGIN})": p_ft if recipe["loo_mre_pct"] < FINETUNE_MARGIN * chosen_loo else p_lin,
            "margin1.0": p_ft if recipe["loo_mre_pct"] < chosen_loo else p_lin,
            "vs-best-linear": p_ft if recipe["loo_mre_pct"] < best_loo else p_lin,
            "linear": p_lin, "finetune-cv": p_ft, "finetune-head1": p_head, "scale": p_scale,
            "mean(lin,ft)": 0.5 * (p_lin + p_ft),
        }
        for rule, pred in rules.items():
            results.setdefault((kind, rule), []).append(metric_scores(yt, pred))
    for (kind, rule), runs in results.items():
        m = {q: np.mean([s[q] for s in runs]) for q in ("mre_pct", "kendall_tau", "within10_pct")}
        print(f"{tname:28s} <{sname:24s} {kind:11s} {rule:15s} MRE {m['mre_pct']:.2f} "
              f"tau {m['kendall_tau']:.3f} w10 {m['within10_pct']:.1f}", flush=True)
