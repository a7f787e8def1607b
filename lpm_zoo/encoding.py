"""The paper's 112-bit cell encoding (§3.2), its inverse, and a canonical key per cell.

Bit `8 * edge + op` is 1 when edge `edge` (DARTS order, see `EDGES`) is kept with primitive
`op` (index into `PRIMITIVES`); a valid cell has exactly 8 ones. Batches are numpy arrays:
`ops` and `inputs` of shape (N, 8), entry 2k and 2k+1 belonging to node k + 2.

Whole genotypes (both cells, the "-both" profiles) are the normal cell's arrays followed by the
reduction cell's: shape (N, 16), a 224-bit encoding (normal bits, then reduction bits, same
order) and a key "normal:reduce". Every batch function here takes either width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lpm_zoo.space import (
    EDGES,
    N_INPUTS,
    N_NODES,
    OP_INDEX,
    PRIMITIVES,
    Cell,
    Genotype,
    GenotypeError,
    validate_cell,
)

N_EDGES = len(EDGES)
N_OPS = len(PRIMITIVES)
N_BITS = N_EDGES * N_OPS  # 112

NODE_OFFSET: np.ndarray = np.cumsum([0] + [N_INPUTS + k for k in range(N_NODES - 1)])
"""First edge index of each intermediate node: node j owns edges NODE_OFFSET[j-2] + i, i < j."""
_SLOT_OFFSET = np.repeat(NODE_OFFSET, 2)  # (8,) edge offset of each of the 8 slots
_SLOT_BASE = (_SLOT_OFFSET * N_OPS).astype(np.int32)  # (8,) first bit of each slot's edge block

CellLike = Genotype | Cell | Sequence[Sequence[object]]


def cell_to_arrays(cell: CellLike) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) int8 arrays of shape (8,) for one normal cell (a Genotype gives its normal cell)."""
    return _pairs_to_arrays(cell.normal if isinstance(cell, Genotype) else validate_cell(cell))


def _pairs_to_arrays(pairs: Cell) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) of a validated cell (a Genotype's cells are validated when it is made)."""
    ops = np.fromiter((OP_INDEX[o] for o, _ in pairs), dtype=np.int8, count=len(pairs))
    inputs = np.fromiter((i for _, i in pairs), dtype=np.int8, count=len(pairs))
    return ops, inputs


def cells_to_arrays(cells: Iterable[CellLike]) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) int8 arrays of shape (N, 8) for many cells."""
    rows = [cell_to_arrays(c) for c in cells]
    if not rows:
        return np.zeros((0, 8), np.int8), np.zeros((0, 8), np.int8)
    ops, inputs = zip(*rows)
    return np.stack(ops), np.stack(inputs)


def arrays_to_cell(ops: np.ndarray, inputs: np.ndarray) -> Cell:
    """The (op, input) pairs of one cell from its (8,) arrays, validated."""
    return validate_cell([(PRIMITIVES[int(o)], int(i)) for o, i in zip(ops, inputs)])


def n_cells(width: int) -> int:
    """How many cells (1: normal only, 2: normal and reduction) arrays of `width` columns hold."""
    if width not in (8, 16):
        raise GenotypeError(f"cell arrays have 8 columns (one cell) or 16 (both cells), got {width}")
    return width // 8


def genotype_to_arrays(genotype: Genotype) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) of shape (16,): the normal cell's arrays, then the reduction cell's."""
    on, i_n = _pairs_to_arrays(genotype.normal)
    o_r, i_r = _pairs_to_arrays(genotype.reduce)
    return np.concatenate([on, o_r]), np.concatenate([i_n, i_r])


def genotypes_to_arrays(genotypes: Iterable[Genotype]) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) of shape (N, 16) for many whole genotypes."""
    rows = [genotype_to_arrays(g) for g in genotypes]
    if not rows:
        return np.zeros((0, 16), np.int8), np.zeros((0, 16), np.int8)
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def encoding_name(cells: int) -> str:
    """What predictors record as their input: lpm-112 (the normal cell, the paper's) or lpm-224 (both cells)."""
    return f"lpm-{N_BITS * cells}"


ENCODING = encoding_name(1)  # the paper's 112-bit normal-cell encoding, bit = 8 * edge + op
ENCODING_BOTH = encoding_name(2)  # both cells: the normal cell's 112 bits, then the reduction cell's


def arrays_to_genotype(ops: np.ndarray, inputs: np.ndarray) -> Genotype:
    """The genotype of (16,) arrays (normal cell, then reduction cell), validated."""
    return Genotype(normal=arrays_to_cell(ops[:8], inputs[:8]), reduce=arrays_to_cell(ops[8:], inputs[8:]))


def bit_indices(ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Positions of the ones of each row's encoding, shape (N, 8) or (N, 16), int64 (for gathers)."""
    k = n_cells(np.shape(ops)[-1])
    base = np.tile(_SLOT_BASE, k) + np.repeat(np.arange(k, dtype=np.int32) * N_BITS, 8)
    slot = base + np.asarray(inputs, dtype=np.int32) * N_OPS
    return (slot + np.asarray(ops, dtype=np.int32)).astype(np.int64, copy=False)


def encode_arrays(ops: np.ndarray, inputs: np.ndarray, dtype: np.dtype = np.float32) -> np.ndarray:
    """Encode a batch given as (N, 8) or (N, 16) arrays into an (N, 112) or (N, 224) 0/1 array, vectorised."""
    idx = bit_indices(np.atleast_2d(ops), np.atleast_2d(inputs))
    out = np.zeros((idx.shape[0], N_BITS * (idx.shape[1] // 8)), dtype=dtype)
    out[np.arange(idx.shape[0])[:, None], idx] = 1
    return out


def encode(cell: CellLike, dtype: np.dtype = np.float32) -> np.ndarray:
    """The 112-bit encoding of one normal cell (a Genotype gives its normal cell)."""
    ops, inputs = cell_to_arrays(cell)
    return encode_arrays(ops[None], inputs[None], dtype)[0]


def encode_batch(cells: Iterable[CellLike], dtype: np.dtype = np.float32) -> np.ndarray:
    """Encodings of many cells, shape (N, 112)."""
    ops, inputs = cells_to_arrays(cells)
    return encode_arrays(ops, inputs, dtype)


def decode_arrays(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `encode_arrays`: (ops, inputs) of shape (N, 8) or (N, 16), inputs ascending within a node."""
    bits = np.atleast_2d(np.asarray(bits))
    if bits.shape[1] == 2 * N_BITS:
        (on, i_n), (o_r, i_r) = decode_arrays(bits[:, :N_BITS]), decode_arrays(bits[:, N_BITS:])
        return np.hstack([on, o_r]), np.hstack([i_n, i_r])
    if bits.shape[1] != N_BITS:
        raise GenotypeError(f"an encoding has {N_BITS} bits (one cell) or {2 * N_BITS} (both), got {bits.shape[1]}")
    if not np.isin(bits, (0, 1)).all():
        raise GenotypeError("an encoding holds only 0 and 1")
    grid = bits.reshape(len(bits), N_EDGES, N_OPS) != 0
    if grid[:, :, 0].any():
        raise GenotypeError("an encoding sets a 'none' bit, which a derived cell never holds")
    per_edge = grid.sum(axis=2)
    if (per_edge > 1).any():
        raise GenotypeError("an encoding chooses more than one operation on an edge")
    ops = np.zeros((len(bits), 2 * N_NODES), np.int8)
    inputs = np.zeros_like(ops)
    for k in range(N_NODES):
        lo, hi = NODE_OFFSET[k], NODE_OFFSET[k] + N_INPUTS + k
        kept = per_edge[:, lo:hi]
        if (kept.sum(axis=1) != 2).any():
            raise GenotypeError(f"an encoding keeps other than 2 edges into node {k + N_INPUTS}")
        src = np.sort(np.argsort(-kept, axis=1, kind="stable")[:, :2], axis=1)  # the 2 kept inputs
        for s in range(2):
            edge = lo + src[:, s]
            inputs[:, 2 * k + s] = src[:, s]
            ops[:, 2 * k + s] = grid[np.arange(len(bits)), edge].argmax(axis=1)
    return ops, inputs


def decode(bits: np.ndarray) -> Cell:
    """The canonical cell for one 112-bit encoding."""
    ops, inputs = decode_arrays(np.asarray(bits)[None])
    return arrays_to_cell(ops[0], inputs[0])


def canonical_cell(cell: CellLike) -> Cell:
    """The cell with each node's two (op, input) pairs ordered by input: equal cells, equal tuples."""
    pairs = cell.normal if isinstance(cell, Genotype) else validate_cell(cell)
    out: list[tuple[str, int]] = []
    for k in range(N_NODES):
        out.extend(sorted(pairs[2 * k : 2 * k + 2], key=lambda p: p[1]))
    return tuple(out)


def op_counts(ops: np.ndarray, dtype: np.dtype = np.float64) -> np.ndarray:
    """(N, 8): how many of each row's edges carry each operation (rows of one cell's 8 slots)."""
    flat = (np.arange(len(ops), dtype=np.int64)[:, None] * N_OPS + np.asarray(ops, np.int64)).ravel()
    return np.bincount(flat, minlength=len(ops) * N_OPS).reshape(len(ops), N_OPS).astype(dtype)


def keys_from_arrays(ops: np.ndarray, inputs: np.ndarray) -> list[str]:
    """Canonical keys (28 hex digits of the 112-bit encoding; "normal:reduce" for both cells), vectorised."""
    bits = encode_arrays(ops, inputs, np.uint8)
    packed = np.packbits(bits, axis=1)  # (N, 14) or (N, 28) bytes
    if packed.shape[1] == 28:
        return [f"{row[:14].tobytes().hex()}:{row[14:].tobytes().hex()}" for row in packed]
    return [row.tobytes().hex() for row in packed]


def cell_key(cell: CellLike) -> str:
    """Canonical key of one cell: the encoding as hex. The two inputs of a node are unordered."""
    ops, inputs = cell_to_arrays(cell)
    return keys_from_arrays(ops[None], inputs[None])[0]


def genotype_key(genotype: Genotype) -> str:
    """Canonical key of a whole genotype: normal-cell key and reduction-cell key."""
    return f"{cell_key(genotype.normal)}:{cell_key(genotype.reduce)}"
