"""A finished search's history read back: the genotype it held after epoch N (argmax α then, with its --max-skip),
what a search of that budget on the same schedule would have returned. It is the anytime curve of the search
(accuracy of the derived cell against search epochs, as in Zela et al. 2020, "Understanding and robustifying
differentiable architecture search"), which `lpm sweep --anytime` trains and measures.

history.json is a file the project reads back: it is read as data (no link followed, its size checked before it
is read, every value it gives checked), and a genotype in it is parsed, never evaluated nor opened as a path."""

from __future__ import annotations

from pathlib import Path

from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import read_own_json, refuse_link
from lpm_zoo.genotype_spec import parse_genotype
from lpm_zoo.space import Genotype

HISTORY = "history.json"
#: the most bytes of a history.json read back (about 8 KB an epoch: a 2,000-epoch search)
MAX_HISTORY_BYTES = 16 << 20


def _epoch(row: object, where: str) -> int:
    if not isinstance(row, dict):
        raise LpmError(f"{where} is not a search history (a row is not an object); rerun the search")
    e = row.get("epoch")
    if isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= 10**6:
        raise LpmError(f"{where} is not a search history (epoch {clip(e, 20)}); rerun the search")
    return e


def genotype_after(out: str | Path, epoch: int) -> tuple[Genotype, int]:
    """The genotype the search in folder `out` held after epoch `epoch`, and the epoch it comes from: `epoch`
    itself, or the last one when the search stopped early before it (--stop-skip: that cell is what it returns).
    A search that has not finished, or ran fewer epochs, is one LpmError line."""
    path = Path(out) / HISTORY
    where = clip(str(path))
    try:
        if not refuse_link(path):
            raise LpmError(f"{where} does not exist: --genotype-after reads a finished search's --out")
        rows = read_own_json(path, MAX_HISTORY_BYTES)
    except OSError as e:  # --out a file, an unreadable history
        raise LpmError(f"cannot read {where} ({e.strerror or type(e).__name__}): --genotype-after reads a finished "
                       "search's --out") from None
    if not isinstance(rows, list) or not rows:
        raise LpmError(f"{where} is not a search history (not a list of epochs); rerun the search")
    epochs = [_epoch(r, where) for r in rows]
    if epochs != list(range(1, len(rows) + 1)):
        raise LpmError(f"{where} is not a search history (its epochs are not 1, 2, ...); rerun the search")
    last = rows[-1]
    if epoch <= len(rows):
        row, came_from = rows[epoch - 1], epoch
    elif last.get("early_stop") is True:
        row, came_from = last, len(rows)
    else:
        raise LpmError(f"--genotype-after {epoch}: the search in {clip(str(out))} ran {len(rows)} epochs")
    text = row.get("genotype")
    if not isinstance(text, str):
        raise LpmError(f"{where}: epoch {came_from} has no genotype; rerun the search")
    try:
        return parse_genotype(text, allow_path=False), came_from
    except LpmError as e:
        raise LpmError(f"{where}: epoch {came_from}: {e}") from None
