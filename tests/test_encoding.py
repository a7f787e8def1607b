"""The 112-bit encoding, the sampler, canonical keys and the exact size of the space."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lpm_zoo.encoding import (
    N_BITS,
    canonical_cell,
    cell_key,
    decode,
    decode_arrays,
    encode,
    encode_arrays,
    keys_from_arrays,
)
from lpm_zoo.published import DARTS_V2
from lpm_zoo.sampler import count_cells, sample_arrays, sample_cells, sample_unique_arrays
from lpm_zoo.space import EDGE_INDEX, OP_INDEX, Genotype


def test_darts_v2_encoding_bits():
    bits = encode(DARTS_V2)
    assert bits.shape == (N_BITS,) == (112,) and bits.sum() == 8
    # ('dil_conv_3x3', 2) feeds node 5: edge (2, 5)
    assert bits[EDGE_INDEX[(2, 5)] * 8 + OP_INDEX["dil_conv_3x3"]] == 1
    assert bits[EDGE_INDEX[(0, 2)] * 8 + OP_INDEX["sep_conv_3x3"]] == 1
    assert bits[EDGE_INDEX[(3, 4)] * 8: EDGE_INDEX[(3, 4)] * 8 + 8].sum() == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_encode_decode_round_trip(seed):
    cell = sample_cells(1, seed)[0]
    bits = encode(cell)
    assert bits.sum() == 8 and set(np.unique(bits)) <= {0.0, 1.0}
    assert decode(bits) == canonical_cell(cell)
    assert np.array_equal(encode(decode(bits)), bits)


def test_batch_encoding_matches_single_and_decodes():
    ops, inputs = sample_arrays(500, seed=1)
    batch = encode_arrays(ops, inputs)
    cells = sample_cells(500, seed=1)
    assert np.array_equal(batch, np.stack([encode(c) for c in cells]))
    o2, i2 = decode_arrays(batch)
    assert np.array_equal(encode_arrays(o2, i2), batch)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_sampler_is_valid_and_reproducible(seed, n):
    ops, inputs = sample_arrays(n, seed)
    assert np.array_equal(ops, sample_arrays(n, seed)[0]) and np.array_equal(inputs, sample_arrays(n, seed)[1])
    assert ((ops >= 1) & (ops <= 7)).all()  # never `none`
    for k in range(4):
        a, b = inputs[:, 2 * k], inputs[:, 2 * k + 1]
        assert (a != b).all() and (a < k + 2).all() and (b < k + 2).all() and (a >= 0).all()
    for c in sample_cells(min(n, 20), seed):  # each is a valid Genotype normal cell
        Genotype(normal=c, reduce=DARTS_V2.reduce)


def test_sampler_is_uniform_over_ops_and_inputs():
    ops, inputs = sample_arrays(70_000, seed=0)
    counts = np.bincount(ops.ravel(), minlength=8)[1:]
    assert counts.min() / counts.max() > 0.95
    pairs = np.sort(inputs[:, 6:8], axis=1)  # node 5: C(5, 2) = 10 unordered pairs, uniform
    _, freq = np.unique(pairs[:, 0] * 10 + pairs[:, 1], return_counts=True)
    assert len(freq) == 10 and freq.min() / freq.max() > 0.9


def test_canonical_key_ignores_input_order_within_a_node():
    swapped = list(DARTS_V2.normal)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert cell_key(swapped) == cell_key(DARTS_V2)
    other = list(DARTS_V2.normal)
    other[0] = ("max_pool_3x3", 0)
    assert cell_key(other) != cell_key(DARTS_V2)


def test_unique_sampling_excludes_and_dedupes():
    ops, inputs, keys = sample_unique_arrays(2000, seed=5)
    assert len(set(keys)) == 2000 and keys == keys_from_arrays(ops, inputs)
    _, _, more = sample_unique_arrays(100, seed=5, exclude=set(keys))
    assert not set(more) & set(keys)


def test_exact_number_of_normal_cells():
    assert count_cells() == 1_037_664_180


def test_count_formula_matches_brute_force_enumeration():
    # Enumerate a reduced space exhaustively (3 nodes, 3 ops) and count distinct canonical keys.
    n_nodes, ops = 3, [OP_INDEX[o] for o in ("max_pool_3x3", "skip_connect", "sep_conv_3x3")]
    per_node = [np.array([(o1, o2, a, b) for a in range(j) for b in range(j) if a != b for o1 in ops for o2 in ops])
                for j in range(2, 2 + n_nodes)]  # (op, op, input, input) per choice of node j
    grid = np.stack([g.ravel() for g in np.indices([len(c) for c in per_node])], 1)  # every combination
    choice = [per_node[k][grid[:, k]] for k in range(n_nodes)]
    last = np.tile([OP_INDEX["sep_conv_3x3"], OP_INDEX["sep_conv_3x3"], 0, 1], (len(grid), 1))  # fixed last node
    all_ops = np.concatenate([c[:, :2] for c in choice] + [last[:, :2]], 1).astype(np.int8)
    all_inputs = np.concatenate([c[:, 2:] for c in choice] + [last[:, 2:]], 1).astype(np.int8)
    assert len(set(keys_from_arrays(all_ops, all_inputs))) == count_cells(n_nodes=3, n_ops=3)
