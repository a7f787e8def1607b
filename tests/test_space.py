"""Genotype parsing, validation and the published cells."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.published import DARTS_V2, PC_DARTS_cifar, get_genotype, list_genotypes
from lpm_zoo.sampler import sample_genotypes
from lpm_zoo.space import EDGES, PRIMITIVES, Genotype, GenotypeError

DARTS_V2_STRING = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


def test_primitives_and_edges_in_darts_order():
    assert PRIMITIVES == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                          "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert EDGES[:7] == ((0, 2), (1, 2), (0, 3), (1, 3), (2, 3), (0, 4), (1, 4))
    assert EDGES[-1] == (4, 5) and len(EDGES) == 14


def test_parse_the_string_darts_prints():
    g = Genotype.from_darts(DARTS_V2_STRING)
    assert g == DARTS_V2
    assert g.normal[7] == ("dil_conv_3x3", 2)
    assert Genotype.from_darts(g.to_darts()) == g


def test_published_cells_by_name():
    assert set(list_genotypes()) == {"DARTS_V2", "PC_DARTS_cifar", "PC_DARTS_image"}
    assert get_genotype("PC_DARTS_cifar") == PC_DARTS_cifar
    assert PC_DARTS_cifar.reduce[0] == ("sep_conv_5x5", 1)
    with pytest.raises(Exception, match="DARTS_V2"):
        get_genotype("DARTS_V3")


def test_published_data_matches_shared_reference():
    from pathlib import Path

    ref = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "published_genotypes.json"
    if not ref.exists():
        pytest.skip(f"{ref} is not present beside this checkout")
    data = json.loads(ref.read_text())["genotypes"]
    for name, cell in data.items():
        assert get_genotype(name).to_dict() == cell


@pytest.mark.parametrize("bad, message", [
    ({"normal": [["conv_9x9", 0]] + [["sep_conv_3x3", 1]] * 7}, "unknown operation 'conv_9x9'"),
    ({"normal": [["none", 0], ["sep_conv_3x3", 1]] + [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 3}, "'none'"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]] + [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 3},
     "must be an earlier node"),
    ({"normal": [["sep_conv_3x3", 1], ["sep_conv_3x3", 1]] + [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 3},
     "takes input 1 twice"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 3}, "expected 8"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, "normal_concat": [2, 3]}, "concatenate all"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, "extra": 1}, "unknown genotype field"),
])
def test_invalid_cells_are_rejected_with_the_reason(bad, message):
    with pytest.raises(GenotypeError, match=message):
        Genotype.from_dict(bad, default_reduce=DARTS_V2.reduce)


def test_parser_never_evaluates_code():
    # A call other than range() is refused, not executed.
    evil = DARTS_V2_STRING.replace("range(2, 6)", "__import__('os').system('false')")
    with pytest.raises(GenotypeError, match="only literals"):
        Genotype.from_darts(evil)


def test_json_round_trip_and_file(tmp_path):
    g = sample_genotypes(1, seed=3)[0]
    assert Genotype.from_json(g.to_json()) == g
    path = tmp_path / "cell.json"
    path.write_text(g.to_json())
    assert parse_genotype(str(path)) == g
    with pytest.raises(GenotypeError, match="does not exist"):
        parse_genotype(str(tmp_path / "missing.json"))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_parser_round_trips(seed):
    g = sample_genotypes(1, seed=seed)[0]
    assert Genotype.from_darts(g.to_darts()) == g
    assert Genotype.from_json(g.to_json()) == g
    assert parse_genotype(g.to_darts()) == g


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_refuses_garbage_cleanly(text):
    try:
        parse_genotype(text)
    except GenotypeError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PRIMITIVES + ("bogus",)), st.integers(-2, 7)), min_size=0, max_size=10))
def test_random_cells_are_either_valid_or_refused(pairs):
    try:
        g = Genotype.from_dict({"normal": pairs}, default_reduce=DARTS_V2.reduce)
    except GenotypeError:
        return
    for k, (op, inp) in enumerate(g.normal):  # anything accepted really is in the space
        assert op != "none" and 0 <= inp < 2 + k // 2
