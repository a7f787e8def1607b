"""A fitted predictor's folder: meta.json, the model (safetensors, or skops for scikit-learn types) and its
training set (train.json.gz); writing it, reading its parts back with their sizes checked, and its hash."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lpm_zoo.encoding import ENCODING, ENCODING_BOTH, decode_arrays
from lpm_zoo.errors import LpmError, clip
from lpm_zoo.files import open_regular, read_regular


class Saved(Protocol):
    """What this module reads of a predictor (`lpm_zoo.predictors.base.Predictor` has it all).

    A protocol, not the class itself: `base` imports `save_predictor` from here, so naming `Predictor`
    (even for type checkers) would make the two modules import each other.
    """

    type_name: str
    persistence: str
    differentiable: bool
    fitted: bool
    meta: dict[str, Any]
    skops_types: frozenset[str]

    def get_params(self) -> dict[str, Any]: ...

FORMAT_VERSION = 1
META = "meta.json"
TRAIN = "train.json.gz"
MODEL_FILES = {"safetensors": "model.safetensors", "skops": "model.skops"}
MAX_META_BYTES = 1 << 20  # meta.json
MAX_MODEL_BYTES = 512 << 20  # model.safetensors / model.skops
MAX_TRAIN_BYTES = 256 << 20  # train.json.gz, decompressed


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("lpm-zoo", "numpy", "torch", "scikit-learn", "skops", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# --- training data -------------------------------------------------------------------------
def _write_train(path: Path, keys: list[str], y: np.ndarray) -> None:
    data = {"encoding": ENCODING_BOTH if keys and ":" in keys[0] else ENCODING, "keys": keys,
            "latency_ms": [float(v) for v in y]}
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(data, f, separators=(",", ":"))


def keys_to_arrays(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ops, inputs) of canonical cell keys (28 hex digits of the 112-bit encoding; "normal:reduce" keys
    give (N, 16) arrays)."""
    if not keys:
        return np.zeros((0, 8), np.int8), np.zeros((0, 8), np.int8)
    if ":" in keys[0]:
        if not all(k.count(":") == 1 for k in keys):
            raise LpmError("stored training keys mix cell keys and normal:reduce genotype keys")
        halves = [k.split(":") for k in keys]
        (on, i_n), (o_r, i_r) = keys_to_arrays([h[0] for h in halves]), keys_to_arrays([h[1] for h in halves])
        return np.hstack([on, o_r]), np.hstack([i_n, i_r])
    try:
        raw = np.frombuffer(bytes.fromhex("".join(keys)), dtype=np.uint8).reshape(len(keys), 14)
    except ValueError:
        raise LpmError("stored training keys are not 28-hex-digit cell keys") from None
    return decode_arrays(np.unpackbits(raw, axis=1))


def read_train(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The stored training set of a predictor directory: (keys, latencies in ms), checked."""
    file = Path(path) / TRAIN
    try:
        with open_regular(file) as packed, gzip.GzipFile(fileobj=packed, mode="rb") as f:
            raw = f.read(MAX_TRAIN_BYTES + 1)
        if len(raw) > MAX_TRAIN_BYTES:
            raise LpmError(f"{file} unpacks to over {MAX_TRAIN_BYTES >> 20} MB; it is not a training set")
        data = json.loads(raw)
        keys, y = data["keys"], np.asarray(data["latency_ms"], dtype=np.float64)
    except LpmError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RecursionError, EOFError) as e:
        raise LpmError(f"{file} is not a readable training set ({type(e).__name__})") from None
    if (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or y.shape != (len(keys),)
            or not (np.isfinite(y) & (y > 0)).all()):
        raise LpmError(f"{file} is not a training set (keys, and as many finite positive latencies)")
    return keys, y


# --- save / load -----------------------------------------------------------------------------
def save_predictor(p: Saved, path: str | Path, **meta: Any) -> Path:
    """Write fitted predictor `p` to directory `path` (replacing it); extra `meta` is recorded too."""
    if not p.fitted or p._train_keys is None:
        raise LpmError("only a predictor fitted in this session can be saved; call fit(X, y_ms) first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        files = {}
        if p.persistence == "skops":
            import skops.io as sio

            sio.dump(p._estimator, tmp / MODEL_FILES["skops"])
        else:
            from safetensors.numpy import save_file

            state = {k: np.ascontiguousarray(v) for k, v in p._state().items()}
            save_file(state, str(tmp / MODEL_FILES["safetensors"]), metadata={"type": p.type_name})
        files["model"] = MODEL_FILES[p.persistence]
        _write_train(tmp / TRAIN, p._train_keys, p._train_y)
        if hasattr(p, "_save_parts"):  # a predictor made of others (adapted) stores them beside itself
            p._save_parts(tmp)
        files["train"] = TRAIN
        p.meta.update(meta)
        p.meta.update(
            format=FORMAT_VERSION, type=p.type_name, params=p.get_params(), persistence=p.persistence,
            differentiable=p.differentiable, files=files, versions=_versions(),
            created=p.meta.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        p.meta.setdefault("name", path.name)
        (tmp / META).write_text(json.dumps(_jsonable(p.meta), indent=2, sort_keys=True) + "\n")
        for f in tmp.rglob("*"):  # mkdtemp and some writers make private files; a zoo is shareable
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def content_hash(path: str | Path) -> str:
    """SHA-256 over a predictor directory's own files (meta.json, model file, train.json.gz, by name): what it is.

    Files that are absent are left out; each present one must be a regular file.
    """
    total = hashlib.sha256()
    for name in (META, *MODEL_FILES.values(), TRAIN):
        try:
            f = open_regular(Path(path) / name)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise LpmError(f"cannot read {Path(path) / name}: {e.strerror or e}") from None
        one = hashlib.sha256()
        with f:
            while chunk := f.read(1 << 20):
                one.update(chunk)
        total.update(f"{name}\0{one.hexdigest()}\n".encode())
    return total.hexdigest()


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checked `meta.json` of predictor directory `path`: a JSON object with a string `type`."""
    file = Path(path) / META
    try:
        raw = read_regular(file, MAX_META_BYTES)
        if len(raw) > MAX_META_BYTES:
            raise LpmError(f"{file} is larger than {MAX_META_BYTES // 1024} KB; it is not a predictor's metadata")
        meta = json.loads(raw)
    except FileNotFoundError:
        raise LpmError(f"{path} holds no fitted predictor ({META} is missing)") from None
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LpmError(f"{file} is not readable JSON ({type(e).__name__}); fit the predictor again with lpm fit"
                       ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("type"), str):
        raise LpmError(f"{file} is not a predictor's metadata (an object with a 'type' string)")
    if meta.get("encoding", ENCODING) not in (ENCODING, ENCODING_BOTH):
        raise LpmError(f"{file} names an encoding this version does not read ({clip(meta.get('encoding'))}); "
                       f"it reads {ENCODING} and {ENCODING_BOTH}")
    fmt = meta.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise LpmError(f"{file}: 'format' must be an integer")
    if fmt > FORMAT_VERSION:
        raise LpmError(f"{path} was written by a newer lpm-zoo (format {fmt}); upgrade lpm-zoo")
    return meta


def read_model(file: Path) -> bytes:
    """The bytes of a model file: a regular file of at most MAX_MODEL_BYTES, else a one-line LpmError."""
    try:
        too_big = file.stat().st_size > MAX_MODEL_BYTES  # refused unread; the read is capped too
        data = b"" if too_big else read_regular(file, MAX_MODEL_BYTES)
    except OSError:
        raise LpmError(f"{file} is missing or unreadable; fit the predictor again with lpm fit") from None
    if too_big or len(data) > MAX_MODEL_BYTES:
        raise LpmError(f"{file} is over the {MAX_MODEL_BYTES >> 20} MB a predictor may have")
    return data


class Unreadable(Exception):
    """A skops file whose schema cannot be read at all (damaged): refit, don't refuse."""


def check_skops_types(cls: type[Saved], file: Path) -> list[str]:
    """The types of skops file `file` beyond skops' defaults, if all are in `cls.skops_types`; else refuse.

    Reads only the file's schema (no object is built), so it is safe on any file.
    """
    return skops_types(cls, read_model(file), file)


def skops_types(cls: type[Saved], data: bytes, file: Path) -> list[str]:
    """`check_skops_types` of a skops file's bytes (read once, so the file checked is the file loaded)."""
    import skops.io as sio

    allowed = getattr(cls, "skops_types", frozenset())
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:
        raise Unreadable(f"unreadable ({type(e).__name__})") from None
    bad = sorted(set(untrusted) - allowed)
    if bad:
        raise LpmError(f"refusing the model of {file.parent}: it holds types a {cls.type_name} model never has "
                       f"({', '.join(t[:80] for t in bad[:3])}); only {', '.join(sorted(allowed)) or 'none'} are "
                       "trusted. Do not use this directory; fit the predictor again with lpm fit")
    return sorted(untrusted)


