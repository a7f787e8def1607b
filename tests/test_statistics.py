"""Statistics of raw runs, their bootstrap uncertainty, the per-statistic repeatability, adaptive stopping."""

from __future__ import annotations

import numpy as np
import pytest

from lpm_zoo.backends.protocol import Protocol, time_interleaved
from lpm_zoo.errors import LpmError
from lpm_zoo.statistics import (
    STATISTICS,
    compare_statistics,
    is_ratio,
    relative_uncertainty,
    repeatability,
    statistic_of,
)

RUNS = [5.0, 7.0, 6.0, 9.0, 4.0, 8.0]  # 3 rounds of 2
REF = [2.0, 3.0, 2.0, 4.0, 2.0, 2.0]


@pytest.mark.parametrize("stat,expected", [
    ("median", 6.5), ("min", 4.0), ("p10", 4.5), ("min_round_median", 6.0),
    ("ref_ratio", 2.5),  # round medians 6, 7.5, 6 over 2.5, 3, 2 -> 2.4, 2.5, 3.0
    ("round_min_ratio", 2.5),  # 5/2, 6/2, 4/2
    ("min_ratio", 2.0), ("p10_ratio", 4.5 / 2.0), ("p25_ratio", 5.25 / 2.0),
])
def test_each_statistic_from_raw_runs(stat, expected):
    assert statistic_of(RUNS, 3, stat, REF if is_ratio(stat) else None) == pytest.approx(expected)


def test_ratio_statistics_cancel_a_slow_spell_that_hits_both():
    rng = np.random.default_rng(0)
    runs, ref = 10 + rng.gamma(1, 0.1, 40), 5 + rng.gamma(1, 0.05, 40)
    slow = np.repeat([1.0, 1.3, 1.0, 1.6], 10)  # rounds 2 and 4 run slower, for both networks
    for stat in (s for s in STATISTICS if is_ratio(s) and s != "min_ratio"):
        a = statistic_of(runs, 4, stat, ref)
        b = statistic_of(runs * slow, 4, stat, ref * slow)
        assert abs(a - b) / a < 0.05, stat
    assert abs(statistic_of(runs * slow, 4, "median") / statistic_of(runs, 4, "median") - 1) > 0.1


def test_unknown_statistic_and_missing_reference_are_one_line_errors():
    with pytest.raises(LpmError, match="unknown statistic 'mean'; known: ref_ratio"):
        statistic_of(RUNS, 3, "mean")
    with pytest.raises(LpmError, match="needs the reference network's runs"):
        statistic_of(RUNS, 3, "min_ratio")
    with pytest.raises(LpmError, match="do not split into 4 equal rounds"):
        statistic_of(RUNS, 4, "ref_ratio", REF)


def test_uncertainty_shrinks_with_more_rounds():
    rng = np.random.default_rng(1)
    few = relative_uncertainty(10 + rng.normal(0, 0.5, 4 * 5), 4, "median")
    many = relative_uncertainty(10 + rng.normal(0, 0.5, 64 * 5), 64, "median")
    assert many < few and relative_uncertainty(RUNS[:2], 1, "median") == float("inf")


def test_repeatability_and_the_statistic_ranking():
    a = [1.0, 2.0, 3.0, 4.0]
    rep = repeatability(a, [1.1, 2.0, 3.0, 4.0])
    assert rep["n"] == 4 and rep["mean_pct"] == pytest.approx(100 * (0.1 / 1.05) / 4)
    assert rep["kendall_tau"] == pytest.approx(1.0) and repeatability([1.0], [-1.0]) is None
    # two passes over 30 cells: the same true times, a different slow spell per pass (hits both networks)
    rng = np.random.default_rng(2)
    pairs = []
    for true in rng.uniform(5, 15, 30):
        sides = []
        for _ in range(2):
            slow = np.repeat(rng.choice([1.0, 1.5], 6), 5)
            sides.append({"runs_ms": list(true * slow * (1 + rng.gamma(1, 0.01, 30))), "rounds": 6,
                          "reference_runs_ms": list(8 * slow * (1 + rng.gamma(1, 0.01, 30)))})
        pairs.append(tuple(sides))
    ranked = compare_statistics(pairs)
    assert {r["statistic"] for r in ranked} == set(STATISTICS)
    assert is_ratio(ranked[0]["statistic"]) and ranked[0]["mean_pct"] < ranked[-1]["mean_pct"]


class _FakeBackend:
    """Times from a generator: `noise` relative jitter around 10 ms (the reference) and 20 ms."""

    def __init__(self, noise: float):
        self.rng, self.noise, self.calls = np.random.default_rng(3), noise, 0

    def run_timed(self, p, n, clock="wall"):
        self.calls += 1
        return list(p * (1 + self.noise * self.rng.standard_normal(n)))


@pytest.mark.parametrize("noise,stops_early", [(0.001, True), (0.3, False)])
def test_adaptive_stopping_quiet_machines_stop_early_noisy_ones_use_the_budget(noise, stops_early):
    proto = Protocol(warmup=0, rounds=20, reps=5, target_pct=1.0, min_rounds=3, statistic="ref_ratio")
    runs = time_interleaved(_FakeBackend(noise), [10.0, 20.0, 20.0], proto)
    used = [len(r) // proto.reps for r in runs]
    assert used[0] == max(used[1:])  # the reference is timed until the last model settles
    assert used == ([proto.min_rounds] * 3 if stops_early else [proto.rounds] * 3)


def test_a_settled_model_leaves_the_turns_while_a_noisy_one_goes_on():
    class Mixed(_FakeBackend):
        def run_timed(self, p, n, clock="wall"):
            noise = 0.3 if p == 30.0 else 0.001
            return list(p * (1 + noise * self.rng.standard_normal(n)))

    proto = Protocol(warmup=0, rounds=12, reps=5, target_pct=1.0, min_rounds=3, statistic="ref_ratio")
    runs = time_interleaved(Mixed(0), [10.0, 20.0, 30.0], proto)
    assert [len(r) // 5 for r in runs] == [12, 3, 12]


@pytest.mark.parametrize("kw,msg", [
    ({"target_pct": 0.001}, "must be from 0.05 to 50"), ({"target_pct": float("nan")}, "must be from"),
    ({"rounds": 10**9}, "rounds must be an integer from 1 to 100000"), ({"warmup": -1}, "warmup must be"),
    ({"statistic": "min_ratio", "reference": False}, "needs the reference network"),
    ({"target_pct": 1.0, "min_rounds": 1}, "needs 2 <= min_rounds <= rounds"),
])
def test_bad_protocols_are_refused(kw, msg):
    with pytest.raises(LpmError, match=msg):
        Protocol(**kw)
