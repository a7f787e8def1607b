"""The sweep's report: the Pareto table (test accuracy against measured latency, mean and spread over seeds, the
reference genotypes trained and measured the same way), the picture, and the paper's claims in words: the λ
trade-off against λ = 0 (Figure 4), latency-aware against FLOPs-aware at matched multiply-adds (Table 4) and
the shift a noisy predictor causes (Table 3). `table`, `claim` and `plot` take runs grouped by spec (the λ spec,
or `ref:NAME`), each run a dict of seed, acc, normal_ms, whole_ms, predicted_ms, skips (and madds_M)."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path
from typing import Any

from lpm_zoo.files import write_atomic
from lpm_zoo.search.options import DATASET_CLASSES
from lpm_zoo.search.sweep import budget, claims
from lpm_zoo.search.sweep.grid import lambda_value
from lpm_zoo.search.sweep.results import profile_column

WHOLE_LABEL = "measured latency of the whole network, ms (lpm measure, ort/cpu, cifar-b1-both)"
#: the paper's claim as tested here: at least this much lower measured latency ...
CLAIM_CUT_PCT = 25.0
#: ... at a test accuracy at most this many points below λ = 0's
CLAIM_ACC_POINTS = 0.5
#: a trial whose test accuracy is within this many points of chance (100 / classes) learned nothing to compare
NEAR_CHANCE_POINTS = 5.0
#: an evaluation training capped below this many steps (`--train-max-steps`) is too short to mean much
MIN_TRAIN_STEPS = 200


def _faster(cut: float) -> str:
    """A latency cut in percent, in words: "12.3% faster" or, for a negative cut, "2.8% slower"."""
    return f"{abs(cut):.1f}% {'faster' if cut >= 0 else 'slower'}"


def _mean(rs: list[dict], key: str) -> float:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.mean(vals) if vals else float("nan")


def _div(a: float, b: float) -> float:
    """a / b, or NaN (printed as —) when b is 0: a ratio of a latency of 0 ms is no claim."""
    return a / b if b else float("nan")


def _f(x: float) -> str:
    return "—" if x != x else f"{x:.2f}"


def table(runs: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: one per spec, means over seeds with the accuracy's range."""
    base = runs.get("0")
    lines = ["| spec | seeds | skip_connect (normal) | predicted ms | measured ms, normal cell | measured ms, whole "
             "network | test acc, mean (min–max) |", "|---|---|---|---|---|---|---|"]

    def rel(spec: str, rs: list[dict], key: str) -> str:
        m = _mean(rs, key)
        if base is None or spec == "0" or m != m or not _mean(base, key) == _mean(base, key):
            return _f(m)
        return f"{m:.2f} ({100 * _div(m - _mean(base, key), _mean(base, key)):+.1f}%)"

    for spec, rs in runs.items():
        accs = [r["acc"] for r in rs]
        lines.append(f"| {spec} | {len(rs)} | {_mean(rs, 'skips'):.1f} | "
                     f"{_f(_mean(rs, 'predicted_ms'))} | {rel(spec, rs, 'normal_ms')} | {rel(spec, rs, 'whole_ms')} | "
                     f"{statistics.mean(accs):.2f}% ({min(accs):.2f}–{max(accs):.2f}) |")
    return lines


def claim(runs: dict[str, list[dict]]) -> list[str]:
    """The paper's claim per λ > 0: >= 25% lower measured latency at accuracy within 0.5 points of λ = 0."""
    base = runs.get("0")
    if not base:
        return ["no λ = 0 runs: the claim cannot be checked"]
    out = []
    for spec, rs in runs.items():
        if spec == "0" or spec.startswith("ref:"):
            continue
        d_acc = _mean(rs, "acc") - _mean(base, "acc")
        for key, what in (("normal_ms", "normal cell"), ("whole_ms", "whole network")):
            if _mean(rs, key) != _mean(rs, key):
                continue
            cut = 100 * (1 - _div(_mean(rs, key), _mean(base, key)))
            ok = cut >= CLAIM_CUT_PCT and d_acc >= -CLAIM_ACC_POINTS
            out.append(f"{spec}: {what} {_faster(cut)}, accuracy {d_acc:+.2f} points: "
                       f"{'meets' if ok else 'does not meet'} the claim")
    return out


def _span(rs: list[dict], key: str, fmt: str = "{:.2f}") -> str:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return f"{fmt.format(min(vals))}–{fmt.format(max(vals))}" if vals else "—"


def _lam_words(spec: str) -> str:
    lam, rel = lambda_value(spec)
    return f"relative λ {lam:g}" if rel else f"λ {lam:g} s⁻¹"


def lambda_claims(runs: dict[str, list[dict]]) -> list[str]:
    """Per λ > 0, in words: how much faster than λ = 0, at how many points of accuracy, with the seeds' spread."""
    base = runs.get("0")
    if not base:
        return ["no λ = 0 trials: nothing to compare against"]
    key = "whole_ms" if _mean(base, "whole_ms") == _mean(base, "whole_ms") else "normal_ms"
    what = "whole network" if key == "whole_ms" else "normal cell"
    out = []
    for spec, rs in runs.items():
        if spec == "0" or spec.startswith("ref:"):
            continue
        cut = 100 * (1 - _div(_mean(rs, key), _mean(base, key)))
        d_acc = _mean(rs, "acc") - _mean(base, "acc")
        out.append(f"at {_lam_words(spec)} the found networks are {_faster(cut)} "
                   f"than λ = 0 ({what}, measured) at {d_acc:+.2f} points of accuracy; seeds: {len(rs)} against "
                   f"{len(base)}, latency {_span(rs, key)} ms against {_span(base, key)} ms, accuracy "
                   f"{_span(rs, 'acc')}% against {_span(base, 'acc')}%")
    return out


def plot(runs: dict[str, list[dict]], path: Path | io.BytesIO, title: str, xlabel: str = WHOLE_LABEL) -> None:
    """Test accuracy against the whole network's measured latency, one point per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    searched = [spec for spec in runs if not spec.startswith("ref:")]
    ref_markers = iter("*DPX^v")
    for spec, rs in runs.items():
        ref = spec.startswith("ref:")
        color = "black" if ref else plt.cm.viridis(searched.index(spec) / max(1, len(searched) - 1))
        ax.scatter([r["whole_ms"] for r in rs], [r["acc"] for r in rs], s=70 if ref else 36,
                   marker=next(ref_markers, "s") if ref else "o", color=color,
                   label=spec.removeprefix("ref:") if ref else f"λ = {spec.replace('rel', 'relative ')}",
                   edgecolors="white", linewidths=0.5, zorder=3 if ref else 2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy, % (lpm train)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: it hides no point
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- from the sweep's results table -----------------------------------------------------------------------
def _run(row: dict[str, Any], normal: str | None, whole: str | None) -> dict[str, Any]:
    acc = row.get("test_acc")
    return {"seed": row["seed"], "acc": 100 * acc if acc is not None else float("nan"),
            "normal_ms": row.get(profile_column(normal)) if normal else None,
            "whole_ms": row.get(profile_column(whole)) if whole else None,
            "predicted_ms": row.get("predicted_ms"), "skips": row.get("skip_normal"), "madds_M": row.get("madds_M")}


def _profiles(profiles: list[str]) -> tuple[str | None, str | None]:
    """(the normal-cell profile, the whole-network one): the first without and the first with '-both'."""
    return (next((p for p in profiles if not p.endswith("-both")), None),
            next((p for p in profiles if p.endswith("-both")), None))


def sections(rows: list[dict[str, Any]], profiles: list[str]) -> dict[tuple, dict[str, list[dict]]]:
    """Runs by spec per (method, dataset, predictor, noise): each with λ = 0 of its method and dataset and the
    references of its dataset, so `table`, `claim` and `plot` apply to each."""
    normal, whole = _profiles(profiles)
    out: dict[tuple, dict[str, list[dict]]] = {}
    zero: dict[tuple, list[dict]] = {}
    refs: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        if r["kind"] in ("reference", "random"):
            label = "random cells" if r["kind"] == "random" else r["reference"]
            refs.setdefault(r["dataset"], {}).setdefault(f"ref:{label}", []).append(_run(r, normal, whole))
        elif r["lambda"] == "0":
            zero.setdefault((r["method"], r["dataset"]), []).append(_run(r, normal, whole))
    for r in rows:
        if r["kind"] in ("reference", "random") or r["lambda"] == "0":
            continue
        key = (r["method"], r["dataset"], r["predictor"], r["noise"])
        sec = out.setdefault(key, {})
        sec.setdefault(r["lambda"], []).append(_run(r, normal, whole))
    if not out:  # only λ = 0 and references: one section per method and dataset, or per dataset of references
        for (method, dataset) in zero:
            out[(method, dataset, None, 0.0)] = {}
        for dataset in refs:
            if not any(k[1] == dataset for k in out):
                out[(None, dataset, None, 0.0)] = {}
    for key, sec in out.items():
        ordered = {"0": zero[key[:2]]} if key[:2] in zero else {}
        ordered.update(sorted(sec.items(), key=lambda kv: lambda_value(kv[0])[0]))
        ordered.update(sorted(refs.get(key[1], {}).items()))
        out[key] = ordered
    return out


def _is_flops(predictor: str | None) -> bool:
    return bool(predictor) and "flops" in predictor.lower()


def flops_claims(secs: dict[tuple, dict[str, list[dict]]]) -> list[str]:
    """Table 4: each latency-aware grid point (without noise) against the FLOPs-aware one of nearest multiply-adds (same method and
    dataset): latency and accuracy at matched FLOPs."""
    lat = [(k, s, rs) for k, sec in secs.items() if not _is_flops(k[2]) and not k[3] for s, rs in sec.items()
           if s != "0" and not s.startswith("ref:")]
    flo = [(k, s, rs) for k, sec in secs.items() if _is_flops(k[2]) and not k[3] for s, rs in sec.items()
           if s != "0" and not s.startswith("ref:")]
    if not lat or not flo:
        return []
    out = []
    for k, s, rs in lat:
        cands = [(fk, fs, frs) for fk, fs, frs in flo if fk[:2] == k[:2] and _mean(frs, "madds_M") == _mean(frs, "madds_M")]
        m = _mean(rs, "madds_M")
        if not cands or m != m:
            continue
        fk, fs, frs = min(cands, key=lambda c: abs(_mean(c[2], "madds_M") - m))
        key = "whole_ms" if _mean(rs, "whole_ms") == _mean(rs, "whole_ms") else "normal_ms"
        cut = 100 * (1 - _div(_mean(rs, key), _mean(frs, key)))
        out.append(f"{k[2]} at {_lam_words(s)} ({m:.0f} M multiply-adds) against {fk[2]} at {_lam_words(fs)} "
                   f"({_mean(frs, 'madds_M'):.0f} M, {100 * (_div(m, _mean(frs, 'madds_M')) - 1):+.1f}%): "
                   f"{_faster(cut)} measured, accuracy "
                   f"{_mean(rs, 'acc') - _mean(frs, 'acc'):+.2f} points (seeds {len(rs)} and {len(frs)})")
    return out


def noise_claims(secs: dict[tuple, dict[str, list[dict]]]) -> list[str]:
    """Table 3: each noisy grid point against the same point without noise: the shift in latency and accuracy."""
    out = []
    for k, sec in secs.items():
        if not k[3]:
            continue
        clean = secs.get((*k[:3], 0.0))
        if not clean:
            continue
        for s, rs in sec.items():
            if s == "0" or s.startswith("ref:") or s not in clean:
                continue
            c = clean[s]
            key = "whole_ms" if _mean(rs, "whole_ms") == _mean(rs, "whole_ms") else "normal_ms"
            shift = 100 * (_div(_mean(rs, key), _mean(c, key)) - 1)
            out.append(f"{k[2]} at {_lam_words(s)} with noise σ = {k[3]:g} ms: latency {shift:+.1f}% and accuracy "
                       f"{_mean(rs, 'acc') - _mean(c, 'acc'):+.2f} points against σ = 0 (latency {_span(rs, key)} ms "
                       f"against {_span(c, key)} ms over the seeds)")
    return out


def short_trial_warnings(rows: list[dict[str, Any]], train: list[str]) -> list[str]:
    """Trials too short to mean anything, said rather than compared silently: an evaluation training capped
    below MIN_TRAIN_STEPS, and per dataset the trials whose test accuracy is within NEAR_CHANCE_POINTS of chance."""
    out = []
    if "--max-steps" in train[:-1]:
        steps = train[train.index("--max-steps") + 1]
        if steps.isdigit() and int(steps) < MIN_TRAIN_STEPS:
            out.append(f"each evaluation training stopped after {steps} steps (--train-max-steps): fewer than "
                       f"{MIN_TRAIN_STEPS}, so its test accuracy says little about the cell")
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_dataset.setdefault(r["dataset"], []).append(r)
    for dataset, rs in by_dataset.items():
        classes = DATASET_CLASSES.get(dataset)
        if not classes:
            continue
        chance = 100 / classes
        low = [f"{r['trial']} ({100 * r['test_acc']:.2f}%)" for r in rs
               if r.get("test_acc") is not None and 100 * r["test_acc"] < chance + NEAR_CHANCE_POINTS]
        if low:
            out.append(f"{len(low)} of {len(rs)} trials on {dataset} reached a test accuracy within "
                       f"{NEAR_CHANCE_POINTS:g} points of chance ({chance:.0f}% for {classes} classes): "
                       f"{', '.join(low[:8])}{' ...' if len(low) > 8 else ''}; they learned nothing, so their "
                       "latency and accuracy compare nothing: train and search longer")
    return out


def _title(key: tuple) -> str:
    method, dataset, predictor, noise = key
    if method is None:
        return f"references on {dataset}"
    return f"{method} on {dataset}, predictor {predictor or '—'}" + (f", noise σ = {noise:g} ms" if noise else "")


def _claim_section(out: Path, rows: list[dict[str, Any]], whole: str) -> list[str]:
    """The search claim against the random cells (lpm_zoo.search.sweep.claims): its verdicts, picture and DIR/claim.json."""
    crows = claims.claim_rows(rows, profile_column(whole))
    write_atomic(out / "claim.json", (json.dumps(crows, indent=1, allow_nan=False) + "\n").encode())
    png, buf = out / "claim.png", io.BytesIO()
    claims.plot_claim(crows, buf, "accuracy against measured latency: random cells, published cells, found cells")
    write_atomic(png, buf.getvalue())  # never through a link
    return ["## The search against random cells", "", *[f"- {v}" for v in claims.verdicts(crows)], "",
            f"![the search against random cells]({png.name})", "", "One row per trained network and training seed: "
            "claim.json.", ""]


def _budget_section(out: Path, rows: list[dict[str, Any]], settings: dict[str, Any], whole: str | None) -> list[str]:
    """The budget curve (lpm_zoo.search.sweep.budget) per dataset: λ = 0's accuracy after each --anytime epoch, in
    words and DIR/budget-DATASET.png."""
    lines = ["## The budget curve", ""]
    for dataset in sorted({str(r.get("dataset")) for r in rows}):
        mine = [r for r in rows if str(r.get("dataset")) == dataset]
        curves = budget.curve(mine, settings)
        if not curves:
            continue
        crows = claims.claim_rows(mine, profile_column(whole)) if whole else []
        png, buf = out / f"budget-{dataset}.png", io.BytesIO()
        budget.plot_budget(curves, crows, buf, {m: budget.warmup(settings, m) for m in curves},
                           f"the budget curve on {dataset}: where does the search start to pay?")
        write_atomic(png, buf.getvalue())  # never through a link
        lines += [f"On {dataset}:", "", *[f"- {v}" for v in budget.verdicts(curves, crows)], "",
                  f"![the budget curve on {dataset}]({png.name})", ""]
    return lines if len(lines) > 2 else [*lines, "No λ = 0 search has all its anytime cells trained yet.", ""]


def write_report(out: Path, rows: list[dict[str, Any]], settings: dict[str, Any], command: str = "") -> Path:
    """DIR/report.md with a table, the claims and a plot (DIR/pareto-N.png) per section; returns the report's path."""
    profiles = settings["measure"]["profiles"]
    secs = sections(rows, profiles)
    normal, whole = _profiles(profiles)
    lines = ["# Sweep report", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [f"Finished trials: {len(rows)}. Search: `{' '.join(settings['search'])}`; evaluation training: "
              f"`{' '.join(settings['train']) or 'the task defaults'}`; measured with `lpm measure --backend "
              f"{settings['measure']['backend']} --device {settings['measure']['device']}` on "
              f"{' '.join([', '.join(profiles), *settings['measure']['flags']])}.", ""]
    if not secs:
        lines.append("No finished trials yet.")
    warnings = short_trial_warnings(rows, settings["train"])
    if warnings:
        lines += ["**Warning: trials too short to mean anything.**", "", *[f"- {w}" for w in warnings], ""]
    for n, (key, runs) in enumerate(secs.items()):
        lines += [f"## {_title(key)}", "", *table(runs), ""]
        claims = lambda_claims(runs) if runs.get("0") else []
        if claims:
            lines += ["Claims (Figure 4):", "", *[f"- {c}" for c in claims], ""]
        verdicts = claim(runs) if runs.get("0") and len(runs) > 1 else []
        if verdicts:
            lines += [f"The paper's claim (≥ {CLAIM_CUT_PCT:g}% faster within {CLAIM_ACC_POINTS:g} points of λ = 0):",
                      "", *[f"- {v}" for v in verdicts], ""]
        if whole or normal:
            xkey = "whole_ms" if whole else "normal_ms"
            plottable = {s: [{**r, "whole_ms": r[xkey]} for r in rs if r[xkey] is not None] for s, rs in runs.items()}
            plottable = {s: rs for s, rs in plottable.items() if rs}
            if plottable:
                png, buf = out / f"pareto-{n}.png", io.BytesIO()
                plot(plottable, buf, _title(key) + ": one point per seed",
                     f"measured latency, ms ({settings['measure']['backend']}/{settings['measure']['device']}, "
                     f"{whole or normal})")
                write_atomic(png, buf.getvalue())  # a reader never sees half a picture; never through a link
                lines += [f"![{_title(key)}]({png.name})", ""]
    t4, t3 = flops_claims(secs), noise_claims(secs)
    if t4:
        lines += ["## Latency-aware against FLOPs-aware at matched multiply-adds (Table 4)", "",
                  *[f"- {c}" for c in t4], ""]
    if t3:
        lines += ["## A noisy predictor (Table 3)", "", *[f"- {c}" for c in t3], ""]
    if whole and any(r["kind"] == "random" for r in rows):
        lines += _claim_section(out, rows, whole)
    if settings.get("anytime"):
        lines += _budget_section(out, rows, settings, whole)
    path = out / "report.md"
    write_atomic(path, "\n".join(lines).encode())
    return path
