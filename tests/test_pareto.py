"""benchmarks/pareto.py: the λ sweep's table, the paper's claim and the picture, from the files the sweep writes."""

import json
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

pareto = load_benchmark("pareto")

_SKIP8 = {"normal": [["skip_connect", k % 2] for k in range(8)], "normal_concat": [2, 3, 4, 5],
          "reduce": [["max_pool_3x3", 0]] * 8, "reduce_concat": [2, 3, 4, 5]}


def _run(out: Path, spec: str, seed: int, acc: float, normal_ms: float, whole_ms: float, search: bool = True):
    d = out / f"{spec}-s{seed}"
    d.mkdir(parents=True)
    (d / "train.json").write_text(json.dumps({"test_acc": acc / 100}))
    (d / "measure.json").write_text(json.dumps({"latency_ms": normal_ms}))
    (d / "measure_whole.json").write_text("log line\n" + json.dumps({"latency_ms": whole_ms}))
    if search:
        (d / "search.json").write_text(json.dumps({"predicted_latency_ms": normal_ms * 1.01}))
        (d / "genotype.json").write_text(json.dumps(_SKIP8))


def test_table_claim_and_picture(tmp_path):
    for seed in (0, 1):
        _run(tmp_path, "0", seed, 80.0 + seed, 10.0, 20.0)
        _run(tmp_path, "rel0.5", seed, 80.2 + seed, 7.0, 16.0)  # 30% / 20% faster, +0.2 points
        _run(tmp_path, "rel1", seed, 70.0, 5.0, 12.0)  # much faster, 10.5 points worse
        _run(tmp_path, "ref:DARTS_V2", seed, 85.0, 9.0, 18.0, search=False)
    (tmp_path / "rel2-s0").mkdir()  # runs still going are left out: no training yet, or not measured yet
    (tmp_path / "rel3-s0").mkdir()
    (tmp_path / "rel3-s0" / "train.json").write_text(json.dumps({"test_acc": 0.5}))
    runs = pareto.load_runs(tmp_path)
    assert list(runs) == ["0", "rel0.5", "rel1", "ref:DARTS_V2"]
    rows = pareto.table(runs)
    assert any(r.startswith("| rel0.5 | 2 | 8.0 |") and "7.00 (-30.0%)" in r and "16.00 (-20.0%)" in r
               and "80.70% (80.20–81.20)" in r for r in rows)
    verdicts = pareto.claim(runs)
    assert "rel0.5: normal cell 30.0% faster, accuracy +0.20 points: meets the claim" in verdicts
    assert "rel0.5: whole network 20.0% faster, accuracy +0.20 points: does not meet the claim" in verdicts
    assert any(v.startswith("rel1: normal cell 50.0% faster, accuracy -10.50") and "does not meet" in v
               for v in verdicts)
    assert not any(v.startswith("ref:") for v in verdicts)
    pareto.plot(runs, tmp_path / "p.png", "t")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no finished runs"):
        pareto.main([str(tmp_path)])
