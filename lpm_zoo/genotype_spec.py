"""A genotype named by a user: a published name, a DARTS string, JSON text, or a JSON file (`parse_genotype`)."""

from __future__ import annotations

from pathlib import Path

from lpm_zoo.errors import clip
from lpm_zoo.published import PUBLISHED, get_genotype
from lpm_zoo.space import MAX_GENOTYPE_CHARS, Cell, Genotype, GenotypeError, check_spec_length, load_json


def parse_genotype(spec: str, default_reduce: Cell | None = None, allow_path: bool = True) -> Genotype:
    """Read a genotype from a published name, a DARTS string, JSON text, or (if `allow_path`) a JSON file path.

    Text that came from data (a line of a file, a request) must pass `allow_path=False`: inside data a
    genotype is a value, never the name of a file to read.
    """
    check_spec_length(spec)
    text = spec.strip()
    if text in PUBLISHED:
        return get_genotype(text)
    if text.startswith("Genotype"):
        return Genotype.from_darts(text, default_reduce)
    if text.startswith("{"):
        return Genotype.from_json(text, default_reduce)
    if allow_path:
        path = _genotype_file(text)
        if path is not None:
            return read_genotype_file(path, default_reduce)
    files = ", or a .json file" if allow_path else " (inside data a genotype is never read from a file)"
    raise GenotypeError(
        f"{clip(spec)} is not a genotype: give a published name ({', '.join(PUBLISHED)}), "
        f"a DARTS string Genotype(normal=[...], ...), JSON{files}"
    )


def _genotype_file(text: str) -> Path | None:
    """`text` as the path of a genotype file, or None when it does not name one."""
    try:
        path = Path(text).expanduser()
        is_file = path.is_file()
    except (RuntimeError, OSError, ValueError):  # "~user" unknown, NUL bytes, over-long names
        path, is_file = Path(text), False
    if is_file:
        return path
    if path.suffix.lower() == ".json":
        raise GenotypeError(f"genotype file {clip(str(path))} does not exist")
    return None


def read_genotype_file(path: Path, default_reduce: Cell | None = None) -> Genotype:
    """A genotype from a file holding JSON or a DARTS string; errors name the file, never echo its text."""
    where = f"genotype file {clip(str(path))}"
    try:
        with open(path, "rb") as f:
            raw = f.read(4 * MAX_GENOTYPE_CHARS + 1)
    except OSError as e:
        raise GenotypeError(f"cannot read {where}: {e.strerror}") from None
    if len(raw) > 4 * MAX_GENOTYPE_CHARS:
        raise GenotypeError(f"{where} is larger than {4 * MAX_GENOTYPE_CHARS} bytes; it is not a genotype")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise GenotypeError(f"{where} is not UTF-8 text (byte {e.start})") from None
    if not text:
        raise GenotypeError(f"{where} is empty")
    if not text.startswith(("Genotype", "{")):
        raise GenotypeError(f"{where} holds neither JSON nor a DARTS Genotype(...) string")
    try:
        if text.startswith("{"):
            return Genotype.from_dict(load_json(text), default_reduce)
        return Genotype.from_darts(text, default_reduce)
    except GenotypeError as e:
        raise GenotypeError(f"{where}: {e}") from None
