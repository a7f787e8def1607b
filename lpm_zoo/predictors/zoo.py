"""Fitted predictors on disk: save / load one, and find them by name in the zoo directories.

A fitted predictor is a directory `<zoo>/<name>/` holding `meta.json` (type, parameters,
backend, device, profile, encoding, training-set size and hash, metrics, library versions),
the model (`model.safetensors` for array models, `model.skops` for scikit-learn ones; never
pickle) and `train.json.gz` (the training set as canonical cell keys and latencies). A
scikit-learn model that no longer loads, or was saved by another scikit-learn version, is
refitted from `train.json.gz` with its stored parameters and seed, and checked against the
stored training-set hash. Names are looked up in `$LPM_ZOO_HOME` (default
`~/.cache/lpm_zoo/zoo`) first, then in the zoo bundled with the package; a bundled predictor's
name is taken (never saved, nor looked up, in the user's zoo). Every file is opened only when it
is a regular file (`lpm_zoo.files`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lpm_zoo.encoding import decode_arrays
from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.files import open_regular, read_regular
from lpm_zoo.notes import note
from lpm_zoo.paths import cache_dir
from lpm_zoo.predictors.base import (
    ENCODING,
    ENCODING_BOTH,
    Predictor,
    check_state,
    create_predictor,
    predictor_class,
    training_hash,
)

FORMAT_VERSION = 1
META = "meta.json"
TRAIN = "train.json.gz"
MODEL_FILES = {"safetensors": "model.safetensors", "skops": "model.skops"}
MAX_META_BYTES = 1 << 20  # meta.json
MAX_MODEL_BYTES = 512 << 20  # model.safetensors / model.skops
MAX_TRAIN_BYTES = 256 << 20  # train.json.gz, decompressed


def user_zoo_dir() -> Path:
    """The user's zoo: `$LPM_ZOO_HOME`, else `zoo/` in the cache folder (`lpm_zoo.paths.cache_dir`)."""
    env = os.environ.get("LPM_ZOO_HOME")
    return Path(env).expanduser() if env else cache_dir() / "zoo"


def bundled_zoo_dir() -> Path:
    """The zoo shipped inside the package (`lpm_zoo/zoo/`)."""
    return Path(str(resources.files("lpm_zoo"))) / "zoo"


def zoo_dirs() -> list[tuple[str, Path]]:
    """Where fitted predictors are looked up, in order: ("user", dir), ("bundled", dir)."""
    return [("user", user_zoo_dir()), ("bundled", bundled_zoo_dir())]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

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
def save_predictor(p: Predictor, path: str | Path, **meta: Any) -> Path:
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


def _new_from_meta(meta: dict[str, Any]) -> Predictor:
    params = meta.get("params", {})
    if not isinstance(params, dict):
        raise LpmError(f"'params' in {META} must be an object")
    names = set(predictor_class(meta["type"])._param_names())
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in names}
    return create_predictor(meta["type"], **params)


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


def load_predictor(path: str | Path) -> Predictor:
    """Load the fitted predictor stored in directory `path` (refitting a scikit-learn one if needed).

    Nothing the directory says is opened as a path: the model file's name follows from the type's
    persistence. A stored model that cannot be used is refused with a one-line error (or refitted
    from the stored training set when it was written by another library version or persistence).
    """
    path = Path(path)
    meta = read_meta(path)
    p = _new_from_meta(meta)
    model = path / MODEL_FILES[p.persistence]
    if meta.get("persistence", p.persistence) != p.persistence:  # e.g. a ridge saved with skops by lpm-zoo 0.1
        _refit(p, path, meta, f"stored as {meta.get('persistence')!r}, this version stores {p.persistence!r}")
    elif p.persistence == "skops":
        reason = _load_skops(p, model, meta)
        if reason is not None:
            _refit(p, path, meta, reason)
    else:
        from safetensors.numpy import load

        try:
            state = load(_read_model(model))
        except LpmError:
            raise
        except Exception as e:  # a damaged or foreign file: say which and how to fix
            raise LpmError(f"cannot read the model of {path} ({type(e).__name__}); fit it again with lpm fit") from None
        problem = check_state(type(p), state)
        if problem:
            raise LpmError(f"cannot read the model of {path}: {problem}; fit it again with lpm fit")
        try:
            p._load_state(state)
        except Exception as e:  # shapes that do not fit together
            raise LpmError(f"cannot read the model of {path} ({type(e).__name__}); fit it again with lpm fit") from None
        if hasattr(p, "_load_parts"):
            p.meta = meta  # what it records of its parts (the sources' hashes)
            p._load_parts(path)
    p.meta = meta  # its encoding says what it reads (lpm-112 or lpm-224)
    _check_answers(p, path)
    return p


def _read_model(file: Path) -> bytes:
    """The bytes of a model file: a regular file of at most MAX_MODEL_BYTES, else a one-line LpmError."""
    try:
        too_big = file.stat().st_size > MAX_MODEL_BYTES  # refused unread; the read is capped too
        data = b"" if too_big else read_regular(file, MAX_MODEL_BYTES)
    except OSError:
        raise LpmError(f"{file} is missing or unreadable; fit the predictor again with lpm fit") from None
    if too_big or len(data) > MAX_MODEL_BYTES:
        raise LpmError(f"{file} is over the {MAX_MODEL_BYTES >> 20} MB a predictor may have")
    return data


def _check_answers(p: Predictor, path: Path) -> None:
    """A loaded model must predict a finite latency for a known cell; else its arrays do not fit its type."""
    from lpm_zoo.published import get_genotype

    try:
        ok = bool(np.isfinite(p.predict([get_genotype("DARTS_V2")])).all())
    except Exception as e:  # wrong shapes or values in a stored model surface here
        raise LpmError(f"the model of {path} does not fit its type {p.type_name!r} ({type(e).__name__});"
                       " fit it again with lpm fit") from None
    if not ok:
        raise LpmError(f"the model of {path} predicts a non-finite latency; fit it again with lpm fit")


class _Unreadable(Exception):
    """A skops file whose schema cannot be read at all (damaged): refit, don't refuse."""


def check_skops_types(cls: type[Predictor], file: Path) -> list[str]:
    """The types of skops file `file` beyond skops' defaults, if all are in `cls.skops_types`; else refuse.

    Reads only the file's schema (no object is built), so it is safe on any file.
    """
    return _skops_types(cls, _read_model(file), file)


def _skops_types(cls: type[Predictor], data: bytes, file: Path) -> list[str]:
    """`check_skops_types` of a skops file's bytes (read once, so the file checked is the file loaded)."""
    import skops.io as sio

    allowed = getattr(cls, "skops_types", frozenset())
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:
        raise _Unreadable(f"unreadable ({type(e).__name__})") from None
    bad = sorted(set(untrusted) - allowed)
    if bad:
        raise LpmError(f"refusing the model of {file.parent}: it holds types a {cls.type_name} model never has "
                       f"({', '.join(t[:80] for t in bad[:3])}); only {', '.join(sorted(allowed)) or 'none'} are "
                       "trusted. Do not use this directory; fit the predictor again with lpm fit")
    return sorted(untrusted)


def _load_skops(p: Predictor, file: Path, meta: dict[str, Any]) -> str | None:
    """Load a skops model into `p`; the reason it must be refitted, or None when loaded.

    A model holding any type outside skops' defaults and the type's exact allow-list is refused.
    """
    import sklearn
    import skops.io as sio

    data = _read_model(file)
    try:
        allowed = _skops_types(type(p), data, file)  # a hostile file is refused even when it would be refitted
    except _Unreadable as e:  # not a zip, no schema: a damaged file, refit from the training set
        return str(e)
    saved = meta.get("versions", {}).get("scikit-learn") if isinstance(meta.get("versions"), dict) else None
    if saved and saved != sklearn.__version__:
        return f"saved with scikit-learn {str(saved)[:40]}, running {sklearn.__version__}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", getattr(sklearn.exceptions, "InconsistentVersionWarning", UserWarning))
            p._estimator = sio.load(io.BytesIO(data), trusted=allowed)
    except Exception as e:  # any other load failure falls back to the refit
        return f"{type(e).__name__}"
    return None


def _refit(p: Predictor, path: Path, meta: dict[str, Any], reason: str) -> None:
    if not (path / TRAIN).is_file():
        raise LpmError(f"the model of {path} does not load ({reason}) and no training set is stored to refit it;"
                       " fit it again with lpm fit")
    note(f"refitting predictor {path.name} from its stored training set ({reason})")
    keys, y = read_train(path)
    if meta.get("train_hash") and training_hash(keys, y) != meta["train_hash"]:
        raise LpmError(f"the stored training set of {path} does not match its recorded hash; fit it again with lpm fit")
    Predictor.fit(p, keys_to_arrays(keys), y)  # base fit: validation, then the type's own _fit
    meta["refit"] = reason


# --- the zoo ---------------------------------------------------------------------------------
TAKEN = "taken"  # `_entries`' "where" of a user entry named like a bundled one: never looked up


def _folder(d: Path) -> list[Path]:
    """The predictor directories of zoo folder `d` (each with a meta.json), by name."""
    if not d.is_dir():
        return []
    return [sub for sub in sorted(d.iterdir()) if not sub.name.startswith(".") and (sub / META).is_file()]


def _entries(with_taken: bool = False) -> list[tuple[str, str, Path]]:
    """(name, where, directory) of every predictor that a name finds: the user's, then the bundled ones.

    A bundled predictor's name always means the bundled predictor: a user entry of that name (made by
    hand, or by an lpm-zoo before names were checked) is never looked up; `with_taken` lists it as TAKEN.
    """
    (user_where, user), (bundled_where, bundled) = zoo_dirs()
    shipped = _folder(bundled)
    names = {sub.name for sub in shipped}
    out = [(sub.name, user_where if sub.name not in names else TAKEN, sub) for sub in _folder(user)
           if with_taken or sub.name not in names]
    return out + [(sub.name, bundled_where, sub) for sub in shipped]


def check_new_name(name: str, zoo: str | Path, what: str = "--name") -> None:
    """Refuse saving a predictor named like a bundled one in any zoo but the bundled one: bundled names are taken.

    `what` says where the name came from in the message (the flag, or "the default name").

    `--force` does not lift it (replacing a user predictor is what --force is for; shadowing a bundled
    one is never done). The bundled zoo itself is exempt: it is where its predictors are made.
    """
    if Path(zoo).expanduser().resolve() == bundled_zoo_dir().resolve():
        return
    if name in {sub.name for sub in _folder(bundled_zoo_dir())}:
        raise LpmError(f"{what} {clip(name)} is taken by a bundled predictor (also with --force: a bundled "
                       f"predictor is never shadowed); pick another --name, e.g. {clip(name + '-mine')}")


def list_predictors() -> list[str]:
    """Names of the fitted predictors in the user's zoo and the bundled one (a bundled name is never a user's)."""
    return [name for name, _, _ in _entries()]


def zoo_table() -> list[dict[str, Any]]:
    """One summary row per fitted predictor: name, where, type, backend, device, profile, size, metrics."""
    rows = []
    for name, where, sub in _entries(with_taken=True):
        if where == TAKEN:
            rows.append({"name": name, "where": "user", "path": str(sub),
                         "error": f"the name is taken by a bundled predictor, so {sub} is never used; rename "
                                  "this folder to use it"})
            continue
        try:
            meta = read_meta(sub)
            cls = predictor_class(meta["type"])
            if cls.persistence == "skops" and (sub / MODEL_FILES["skops"]).is_file():
                check_skops_types(cls, sub / MODEL_FILES["skops"])
        except _Unreadable:
            pass  # loading it will refit it from its training set
        except LpmError as e:
            rows.append({"name": name, "where": where, "path": str(sub), "error": str(e)})
            continue
        row = {k: meta.get(k) for k in ("type", "backend", "device", "profile", "encoding", "train_size", "metrics",
                                        "created", "hardware")}
        rows.append({"name": name, "where": where, "path": str(sub), **row})
    return rows


def predictor_path(name: str) -> Path:
    """Directory of the fitted predictor `name` (or `name` itself when it is such a directory)."""
    direct = Path(name).expanduser()
    if (direct / META).is_file():
        return direct
    for n, _, sub in _entries():
        if n == name:
            return sub
    have = list_predictors()
    backend, _, device = name.partition("-")
    if not device:
        backend, device = "BACKEND", "DEVICE"
    from lpm_zoo.hardware import cpu_model, cpu_slug

    # this CPU's name (or the older `cpu`) is measured on the CPU; any other name is taken for a GPU's
    where = (f"--device cpu --device-name {device}" if device in ("cpu", cpu_slug(cpu_model()))
             else f"--device cuda --device-name {device}")
    raise LpmError(
        f"no fitted predictor named {name!r} (have: {', '.join(have) or 'none'}; looked in "
        f"{', '.join(str(d) for _, d in zoo_dirs())}); make it with: lpm profile --backend {backend} {where}"
        f" --profile cifar-b1 --samples 10000 --db lpm.db, then lpm fit --db lpm.db --backend {backend}"
        f" --device {device} --profile cifar-b1 --predictor mlp --name {name}"
    )


def hardware_note(p: Predictor, name: str, backend_hint: str = "") -> str | None:
    """One line when `p` was fitted on another CPU than this one (None otherwise, and for GPU predictors).

    Predicting for a GPU that is not here is legitimate; a CPU predictor used on another CPU model
    is usually off by a machine-wide factor, which a few measurements here remove (`lpm adapt`).
    """
    from lpm_zoo.hardware import cpu_fingerprint, describe, same_hardware

    hw = p.meta.get("hardware")
    if not isinstance(hw, dict) or hw.get("kind") != "cpu":
        return None
    here = cpu_fingerprint()
    if same_hardware(hw, here) is not False:
        return None
    backend = str(p.meta.get("backend", "BACKEND"))[:20]
    profile = str(p.meta.get("profile", "cifar-b1"))[:20]
    return printable(f"{name} was fitted on {describe(hw)}; this machine is {describe(here)}: its latencies may be "
                     f"off by a machine-wide factor; adapt it here with: lpm adapt --from {name} --backend {backend} "
                     f"--device cpu --profile {profile} --samples 10 --db here.db --name {backend}-here")


def get_predictor(name: str) -> Predictor:
    """The fitted predictor `name` (e.g. `ort-cpu`), from the user's zoo or the bundled one."""
    return load_predictor(predictor_path(name))
