"""The DARTS cell search space: primitives, edges and the `Genotype` as plain data.

A cell has two input nodes (0: c_{k-2}, 1: c_{k-1}) and four intermediate nodes (2..5).
Each intermediate node keeps two edges from distinct earlier nodes, one operation per edge,
and the cell output concatenates all intermediate nodes (as in every published DARTS cell).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lpm_zoo.errors import LpmError, clip

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""The eight candidate operations, in the DARTS order (index = position in the encoding)."""

OPS_KEPT: tuple[str, ...] = PRIMITIVES[1:]
"""Operations a derived cell may hold: every primitive but `none`."""

N_INPUTS = 2
N_NODES = 4
CONCAT: tuple[int, ...] = tuple(range(N_INPUTS, N_INPUTS + N_NODES))

EDGES: tuple[tuple[int, int], ...] = tuple(
    (i, j) for j in range(N_INPUTS, N_INPUTS + N_NODES) for i in range(j)
)
"""The 14 edges (from, to) in DARTS order: (0,2),(1,2),(0,3),(1,3),(2,3),(0,4),...,(4,5)."""

EDGE_INDEX: dict[tuple[int, int], int] = {e: k for k, e in enumerate(EDGES)}
OP_INDEX: dict[str, int] = {name: k for k, name in enumerate(PRIMITIVES)}
#: kernel, padding and dilation of the convolution primitives (the DARTS code's OPS table): what the PyTorch
#: operations (`lpm_zoo.ops`) and the torch-free ONNX builder (`lpm_zoo.backends.onnx_builder`) both build
CONV_GEOMETRY: dict[str, tuple[int, int, int]] = {
    "sep_conv_3x3": (3, 1, 1), "sep_conv_5x5": (5, 2, 1),
    "dil_conv_3x3": (3, 2, 2), "dil_conv_5x5": (5, 4, 2),
}

MAX_GENOTYPE_CHARS = 8192
"""Longest genotype text read (a DARTS string is ~500 characters): longer input is refused unparsed."""

Cell = tuple[tuple[str, int], ...]
"""A cell as DARTS writes it: 8 (op, input) pairs, two per intermediate node."""


class GenotypeError(LpmError):
    """A cell or genotype that is not in the search space; the message names the problem."""


def validate_cell(cell: Iterable[Sequence[Any]], what: str = "cell") -> Cell:
    """Return `cell` as a tuple of (op, input) pairs, or raise GenotypeError naming the fault."""
    try:
        pairs = [tuple(p) for p in cell]
    except TypeError:
        raise GenotypeError(f"{what}: expected a list of [op, input] pairs") from None
    if len(pairs) != 2 * N_NODES:
        raise GenotypeError(
            f"{what}: expected {2 * N_NODES} [op, input] pairs (2 per node), got {len(pairs)}"
        )
    out = []
    for k, pair in enumerate(pairs):
        node = N_INPUTS + k // 2
        if len(pair) != 2:
            raise GenotypeError(f"{what}: entry {k} is {clip(pair)}, expected [op, input]")
        op, inp = pair
        if not isinstance(op, str) or op not in OP_INDEX:
            raise GenotypeError(
                f"{what}: unknown operation {clip(op)} at entry {k}; known: {', '.join(OPS_KEPT)}"
            )
        if op == "none":
            raise GenotypeError(f"{what}: entry {k} keeps 'none', which a derived cell never holds")
        if isinstance(inp, bool) or not isinstance(inp, int):
            raise GenotypeError(f"{what}: entry {k} input {clip(inp)} is not an integer node index")
        if not 0 <= inp < node:
            raise GenotypeError(
                f"{what}: entry {k} (node {node}) takes input {clip(inp)}; it must be an earlier node, 0..{node - 1}"
            )
        out.append((op, int(inp)))
    for node in range(N_NODES):
        a, b = out[2 * node][1], out[2 * node + 1][1]
        if a == b:
            raise GenotypeError(
                f"{what}: node {node + N_INPUTS} takes input {a} twice; its two inputs must differ"
            )
    return tuple(out)


def _validate_concat(concat: Iterable[int], what: str) -> tuple[int, ...]:
    """`concat` as a tuple; only CONCAT (all intermediate nodes) is in this space."""
    if isinstance(concat, range):  # lazy: a huge range is refused without being built
        concat = concat if len(concat) <= N_NODES else ()
    if not isinstance(concat, (list, tuple, range)) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in concat
    ):
        raise GenotypeError(f"{what}: expected a list of node indices, got {clip(concat)}")
    values = tuple(concat)
    if values != CONCAT:
        raise GenotypeError(
            f"{what}: {clip(list(values))} is not supported; cells in this space concatenate all "
            f"intermediate nodes {list(CONCAT)}"
        )
    return values


@dataclass(frozen=True)
class Genotype:
    """A DARTS genotype: normal and reduction cells as (op, input) pairs, validated on creation."""

    normal: Cell
    normal_concat: tuple[int, ...] = CONCAT
    reduce: Cell = ()
    reduce_concat: tuple[int, ...] = CONCAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", validate_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", validate_cell(self.reduce, "reduce"))
        object.__setattr__(self, "normal_concat", _validate_concat(self.normal_concat, "normal_concat"))
        object.__setattr__(self, "reduce_concat", _validate_concat(self.reduce_concat, "reduce_concat"))

    # --- text forms -------------------------------------------------------------------
    def __str__(self) -> str:
        return self.to_darts()

    def to_darts(self) -> str:
        """The string the DARTS code prints (`Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`)."""

        def cell(c: Cell) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in c) + "]"

        return (
            f"Genotype(normal={cell(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={cell(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: cells as lists of [op, input]."""
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def with_reduce(self, reduce: Cell | Genotype) -> Genotype:
        """This genotype with another reduction cell (a Genotype gives its own `reduce`)."""
        cell = reduce.reduce if isinstance(reduce, Genotype) else reduce
        return Genotype(self.normal, self.normal_concat, cell, self.reduce_concat)

    @classmethod
    def from_dict(cls, data: dict[str, Any], default_reduce: Cell | None = None) -> Genotype:
        """Build from JSON-like data; `reduce` may be omitted when `default_reduce` is given."""
        if not isinstance(data, dict) or "normal" not in data:
            raise GenotypeError("a genotype object needs a 'normal' key (8 [op, input] pairs)")
        unknown = set(data) - {"normal", "normal_concat", "reduce", "reduce_concat"}
        if unknown:
            raise GenotypeError(f"unknown genotype field(s): {clip(', '.join(sorted(map(str, unknown))))}")
        reduce = data.get("reduce", default_reduce)
        if reduce is None:
            validate_cell(data["normal"], "normal")
            raise GenotypeError("the genotype has no 'reduce' cell and no default was given")
        return cls(
            normal=data["normal"],
            normal_concat=data.get("normal_concat", CONCAT),
            reduce=reduce,
            reduce_concat=data.get("reduce_concat", CONCAT),
        )

    @classmethod
    def from_json(cls, text: str, default_reduce: Cell | None = None) -> Genotype:
        """Parse JSON text (at most MAX_GENOTYPE_CHARS); errors name the position, never echo the text."""
        check_spec_length(text)
        return cls.from_dict(load_json(text), default_reduce)

    @classmethod
    def from_darts(cls, text: str, default_reduce: Cell | None = None) -> Genotype:
        """Parse the DARTS repr without executing it (the text is parsed, never evaluated)."""
        check_spec_length(text)
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as e:
            at = f" (column {e.offset})" if e.offset else ""
            raise GenotypeError(f"not a DARTS genotype string: it does not parse{at}") from None
        except (ValueError, RecursionError, MemoryError):  # NUL bytes, nesting too deep
            raise GenotypeError("not a DARTS genotype string: it does not parse") from None
        call = tree.body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
            raise GenotypeError("not a DARTS genotype string: expected Genotype(normal=..., reduce=...)")
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        values: dict[str, Any] = {}
        if len(call.args) > len(fields):
            raise GenotypeError("Genotype(...) takes at most 4 fields")
        for name, node in list(zip(fields, call.args)) + [(k.arg, k.value) for k in call.keywords]:
            if name not in fields:
                raise GenotypeError(f"Genotype(...) has an unknown field {clip(name)}")
            values[name] = _literal(node, name)
        return cls.from_dict(values, default_reduce)


def _literal(node: ast.AST, name: str) -> Any:
    """A literal value, or `range(a, b)` for concat fields (left lazy); anything else is refused."""
    if isinstance(node, ast.Call):
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and not node.keywords
            and 1 <= len(node.args) <= 3
        ):
            args = [_literal(a, name) for a in node.args]
            if not all(isinstance(a, int) and not isinstance(a, bool) and abs(a) <= 1000 for a in args):
                raise GenotypeError(f"field {name!r}: range() takes small integers, got {clip(args)}")
            try:
                return range(*args)  # lazy: its length is checked before it is ever listed
            except ValueError as e:  # step 0
                raise GenotypeError(f"field {name!r}: {e}") from None
        raise GenotypeError(f"field {name!r} holds a call; only literals and range(a, b) are read")
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise GenotypeError(f"field {name!r} is not a literal value") from None


def check_spec_length(text: str) -> None:
    if len(text) > MAX_GENOTYPE_CHARS:
        raise GenotypeError(
            f"a genotype is at most {MAX_GENOTYPE_CHARS} characters; this one has {len(text)} (not parsed)"
        )


def load_json(text: str | bytes) -> Any:
    """`json.loads`, with every failure (syntax, nesting, huge numbers) as a GenotypeError naming the position."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # a number over 4300 digits, nesting too deep
        why = "nested too deeply" if isinstance(e, RecursionError) else "a value is too large"
        raise GenotypeError(f"not JSON: {why}") from None
