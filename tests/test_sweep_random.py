"""`lpm sweep --random N`: the random-search baseline as resumable trials (genotypes drawn from the space with a
seed, trained and measured like the references), with the fake steps of tests/sweep_fake_lpm.py."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lpm_zoo.cli import main
from lpm_zoo.sampler import sample_random_genotypes
from lpm_zoo.search.sweep.grid import Grid
from lpm_zoo.space import OPS_KEPT

FAKE = Path(__file__).with_name("sweep_fake_lpm.py")
STEP = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    log = tmp_path / "steps.log"
    monkeypatch.setenv("FAKE_LPM_LOG", str(log))
    monkeypatch.setenv("FAKE_LPM_SLEEP", "0")
    return log


def read_results(out):
    return pq.read_table(out / "results.parquet").to_pylist()


def _sweep(out, *extra):
    return main(["sweep", "--out", str(out), "--lambda", "none", "--references", "none", "--seeds", "0",
                 "--profiles", "cifar-b1-both", "--step-command", STEP, *extra])


def test_sampled_genotypes_are_distinct_seeded_and_a_longer_list_extends_a_shorter_one():
    a, b, c = sample_random_genotypes(12, 3), sample_random_genotypes(20, 3), sample_random_genotypes(12, 4)
    assert a == b[:12] and a != c
    assert len({json.dumps(g.to_dict()) for g in b}) == 20
    assert any(g.normal != b[0].normal for g in b) and any(g.reduce != b[0].reduce for g in b)  # both cells drawn
    assert {op for g in b for op, _ in g.normal + g.reduce} <= set(OPS_KEPT)


def test_random_trials_run_are_rows_of_kind_random_and_resume(tmp_path, fake):
    out = tmp_path / "sw"
    assert _sweep(out, "--random", "3", "--random-seed", "7") == 0
    rows = read_results(out)
    assert [r["kind"] for r in rows] == ["random"] * 3
    want = [json.dumps(g.to_dict(), separators=(",", ":")) for g in sample_random_genotypes(3, 7)]
    assert sorted(r["genotype"] for r in rows) == sorted(want)
    assert "random cells" in (out / "report.md").read_text()
    n_events = len(fake.read_text().splitlines())
    assert _sweep(out, "--random", "3", "--random-seed", "7") == 0  # resumed: nothing runs again
    assert len(fake.read_text().splitlines()) == n_events
    # a larger N extends the list: the first 3 are kept, 2 new ones run
    assert _sweep(out, "--random", "5", "--random-seed", "7", "--extend") == 0
    rows = read_results(out)
    assert len(rows) == 5 and len({r["genotype"] for r in rows}) == 5
    assert Grid.from_json(json.loads((out / "grid.json").read_text())).random == {"n": 5, "seed": 7}


@pytest.mark.parametrize("flags, words", [(["--random", "-1"], "--random"), (["--random", "1001"], "--random"),
                                          (["--random", "2", "--random-seed", "-3"], "--random-seed")])
def test_bad_random_values_are_one_line_and_create_nothing(tmp_path, fake, capsys, flags, words):
    out = tmp_path / "sw"
    assert _sweep(out, *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not out.exists()


@pytest.mark.parametrize("random", [{"n": 0, "seed": 1}, {"n": "3", "seed": 1}, {"n": 3, "seed": -1},
                                    {"n": 3, "seed": 1, "path": "/etc/passwd"}, {"n": 10**9, "seed": 0}])
def test_a_crafted_random_entry_in_grid_json_is_refused(random):
    from lpm_zoo.errors import LpmError

    data = _valid_grid_json()
    Grid.from_json(data)  # valid as it is: the entry below is what is refused
    data["random"] = random
    with pytest.raises(LpmError, match="not a sweep grid.*random"):
        Grid.from_json(data)


def _valid_grid_json() -> dict:
    settings = {"search": [], "train": [], "measure": {"backend": "ort", "device": "cpu", "profiles": ["cifar-b1-both"],
                                                       "db": {}, "flags": []}}
    return Grid({"method": ["darts"], "dataset": ["textures"], "predictor": ["ort-cpu"], "lambda": [], "noise": [0.0],
                 "seed": [0]}, [], settings).to_json()


def test_baselines_train_with_their_own_seeds_and_a_random_study_is_reused(tmp_path, fake, capsys):
    study, claim = tmp_path / "random", tmp_path / "claim"
    assert _sweep(study, "--references", "DARTS_V2", "--random", "2", "--seeds", "0,1") == 0
    before = len(fake.read_text().splitlines())
    assert _sweep(claim, "--lambda", "0", "--seeds", "0,1,2") == 0  # the searches first, without baselines
    flags = ["--lambda", "0,rel0.5", "--seeds", "0,1,2", "--references", "DARTS_V2", "--random", "2"]
    assert _sweep(claim, *flags, "--baseline-seeds", "0,1", "--reuse", str(study), "--extend") == 0
    ran = {line.split()[1] for line in fake.read_text().splitlines()[before:]}
    assert ran == {f"darts-textures-ort-cpu-{lam}-n0-s{s}" for s in (0, 1, 2) for lam in ("0", "rel0.5")}  # only
    assert json.loads((claim / "grid.json").read_text())["baseline_seeds"] == [0, 1]  # the 6 baselines were reused
    rows = read_results(claim)
    assert sorted((r["kind"], r["seed"]) for r in rows) == sorted(
        [("search", s) for s in (0, 1, 2)] * 2 + [(k, s) for s in (0, 1) for k in ("reference", "random", "random")])
    assert _sweep(claim, *flags, "--baseline-seeds", "0,1", "--reuse", str(study)) == 0  # the same grid: resumes
    capsys.readouterr()
    assert _sweep(claim, *flags, "--baseline-seeds", "0,1,2") == 2  # another grid without --extend: refused
    assert "it differs in baseline seeds" in capsys.readouterr().err
    assert _sweep(claim, *flags, "--baseline-seeds", "0,1,2", "--extend") == 0  # seed 2 of the 3 baselines
    assert sorted(r["seed"] for r in read_results(claim) if r["kind"] != "search") == [0] * 3 + [1] * 3 + [2] * 3
    # more search seeds without --baseline-seeds add searches only, once the baselines have seeds of their own
    assert _sweep(claim, *flags, "--baseline-seeds", "0,1", "--reuse", str(study)) == 2  # [0,1,2] is stored now
    study2 = tmp_path / "two"
    assert _sweep(study2, "--lambda", "0", "--seeds", "0,1", "--references", "DARTS_V2", "--baseline-seeds", "1") == 0
    assert _sweep(study2, "--lambda", "0", "--seeds", "0,1,2,3", "--references", "DARTS_V2", "--extend") == 0
    assert sorted((r["kind"], r["seed"]) for r in read_results(study2)) == [
        ("reference", 1), ("search", 0), ("search", 1), ("search", 2), ("search", 3)]
    capsys.readouterr()
    assert _sweep(tmp_path / "none", "--lambda", "0", "--baseline-seeds", "1") == 2  # no baselines to seed
    assert "--baseline-seeds seeds the references and random cells" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("seeds", [[-1], ["0"], [0, 0], "0,1", [True], list(range(101))])
def test_a_crafted_baseline_seeds_entry_in_grid_json_is_refused(seeds):
    from lpm_zoo.errors import LpmError

    data = _valid_grid_json()
    data["references"] = [["DARTS_V2", "DARTS_V2"]]
    data["axes"]["lambda"] = ["0"]
    data["baseline_seeds"] = [1, 2]
    assert sorted((t.kind, t.seed) for t in Grid.from_json(data).trials()) == [
        ("reference", 1), ("reference", 2), ("search", 0)]  # the search on axis seed 0, the reference on 1 and 2
    data["baseline_seeds"] = seeds
    with pytest.raises(LpmError, match="not a sweep grid.*baseline_seeds"):
        Grid.from_json(data)


def _row(kind, acc, ms, seed, genotype, method=None, lam=None, reference=None):
    return {"kind": kind, "test_acc": acc, "latency_ms_cifar-b1-both": ms, "seed": seed, "method": method,
            "lambda": lam, "reference": reference, "genotype": json.dumps(genotype.to_dict())}


def _claim_rows(lam_acc, lam_ms, zero_acc=0.85):
    from lpm_zoo.published import DARTS_V2
    from lpm_zoo.search.sweep.claims import claim_rows

    gen = sample_random_genotypes(13, 0)
    rows = [_row("random", 0.80 + 0.01 * (i % 6) + 0.002 * s, 10.0 + i, s, g)
            for i, g in enumerate(gen[:10]) for s in (0, 1)]
    rows += [_row("reference", 0.855, 12.0, s, DARTS_V2, reference="DARTS_V2") for s in (0, 1)]
    rows += [_row("search", zero_acc, 20.0, s, gen[10], "darts", "0") for s in (0, 1, 2)]
    rows += [_row("search", lam_acc, lam_ms, s, gen[11], "darts", "rel0.2") for s in (0, 1, 2)]
    return claim_rows(rows, "latency_ms_cifar-b1-both")


def test_claim_rows_are_plain_and_published_names_kept():
    crows = _claim_rows(0.85, 5.0)
    assert {r["kind"] for r in crows} == {"random", "reference", "search"} and len(crows) == 28
    ref = next(r for r in crows if r["kind"] == "reference")
    assert ref["genotype"] == "DARTS_V2" and ref["seed"] is None and ref["train_seed"] in (0, 1)
    rnd = next(r for r in crows if r["kind"] == "random")
    assert rnd["genotype"].startswith("Genotype(normal=") and 0 <= rnd["test_acc"] <= 1 and rnd["whole_ms"] >= 10
    assert json.loads(json.dumps(crows, allow_nan=False)) == crows


@pytest.mark.parametrize("lam_acc, lam_ms, zero_acc, lam_pass, zero_pass", [
    (0.85, 5.0, 0.85, True, True),     # 75% faster, same accuracy, no random cell faster and as accurate
    (0.83, 5.0, 0.85, False, True),    # 2 points lost
    (0.85, 15.0, 0.85, False, True),   # only 25% faster
    (0.80, 13.0, 0.80, False, False),  # λ = 0 under DARTS_V2 − 1 and under the random median; random cells dominate
])
def test_verdicts_pass_and_fail_on_the_issue_bars(lam_acc, lam_ms, zero_acc, lam_pass, zero_pass):
    from lpm_zoo.search.sweep.claims import random_band, verdicts

    crows = _claim_rows(lam_acc, lam_ms, zero_acc)
    band = random_band(crows)
    assert band["cells"] == 10 and band["between_seeds_sd"] < band["between_cells_sd"]
    lines = verdicts(crows)
    zero = next(v for v in lines if "λ = 0 (3 seeds)" in v)
    lam = next(v for v in lines if "λ rel0.2" in v)
    assert zero.endswith("PASS") == zero_pass and ("PASS" in lam) == lam_pass
