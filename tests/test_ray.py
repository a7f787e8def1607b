"""Ray: the protocol reaches every worker whole.

The protocol travels three ways: to Ray actors (the dataclass), to local worker processes (as
`lpm profile` flags) and into the store (a row's recorded protocol, read back by `lpm recheck`).
Each test below round-trips a protocol whose every field differs from the default, so a new field
that a transport forgets fails here.
"""

import sys
from dataclasses import fields

import pytest

from backends.commands import _protocol, protocol_flags
from backends.profiler import _recorded_protocol
from backends.protocol import Protocol
from backends.ray_runner import RayPool
from backends.workers import _child_argv
from lpm_zoo.cli import build_parser, discover_commands
from lpm_zoo.profiles import get_profile
from lpm_zoo.sampler import sample_unique_arrays

#: a value other than the default for every Protocol field (valid together); a new field must be added here
OTHER = {"warmup": 2, "rounds": 7, "reps": 3, "threads": 2, "statistic": "median", "interleave": 3, "clock": "wall",
         "reference": False, "target_pct": 5.0, "min_rounds": 4}


def _other_protocol() -> Protocol:
    names = [f.name for f in fields(Protocol)]
    assert sorted(OTHER) == sorted(names), "give each Protocol field a non-default value in OTHER"
    p = Protocol(**OTHER)
    assert all(getattr(p, f.name) != f.default for f in fields(Protocol))
    return p


def _lpm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lpm_zoo", *args]


# --- the protocol over each transport ------------------------------------------------------
def test_every_protocol_field_survives_the_cli_flags_and_the_local_workers_command_line():
    p = _other_protocol()
    parser = build_parser(discover_commands())
    args = parser.parse_args(["profile", "--backend", "ort", "--samples", "4", "--db", "x.db", *protocol_flags(p)])
    assert _protocol(args, args.interleave) == p
    argv = _child_argv(args, p, 1, 2)
    assert argv[:3] == [sys.executable, "-m", "lpm_zoo"] and argv[argv.index("--shard") + 1] == "1/2"
    child = parser.parse_args(argv[3:])
    assert _protocol(child, child.interleave) == p
    default = Protocol()  # and the default, whose target_pct is unset (fixed rounds)
    args = parser.parse_args(["profile", "--backend", "ort", "--samples", "4", "--db", "x.db",
                              *protocol_flags(default)])
    assert _protocol(args, args.interleave) == default


@pytest.mark.slow
def test_every_protocol_field_reaches_a_ray_actor_and_the_store(tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (pip install 'lpm-zoo[ray]')")
    p = _other_protocol()
    pool = RayPool("local", "ort", "cpu", "cifar-b1", p, None, 0, workers=1)
    try:
        ops, inputs, _ = sample_unique_arrays(1, 0)
        cell = get_profile("cifar-b1").from_arrays(ops[0], inputs[0])
        (group,) = list(pool.measure_all([[cell]]))
    finally:
        pool.shutdown()
    (m,) = group
    assert m.genotype == cell and m.protocol["reps"] == 3 and len(m.runs_ms) % 3 == 0
    proto, seed = _recorded_protocol({"protocol": m.protocol})  # what `lpm recheck` rebuilds from the row
    assert proto == p and seed == 0
