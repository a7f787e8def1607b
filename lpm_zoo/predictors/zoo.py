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

import io
import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lpm_zoo.errors import LpmError, clip, printable
from lpm_zoo.hardware import cpu_fingerprint, cpu_model, cpu_slug, describe, same_hardware
from lpm_zoo.notes import note
from lpm_zoo.paths import cache_dir
from lpm_zoo.predictors.base import Predictor, check_state, training_hash
from lpm_zoo.predictors.files import (
    META,
    MODEL_FILES,
    TRAIN,
    Unreadable,
    check_skops_types,
    keys_to_arrays,
    read_meta,
    read_model,
    read_train,
    skops_types,
)
from lpm_zoo.predictors.registry import create_predictor, predictor_class
from lpm_zoo.published import get_genotype


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


def _new_from_meta(meta: dict[str, Any]) -> Predictor:
    params = meta.get("params", {})
    if not isinstance(params, dict):
        raise LpmError(f"'params' in {META} must be an object")
    names = set(predictor_class(meta["type"])._param_names())
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in names}
    return create_predictor(meta["type"], **params)


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
            state = load(read_model(model))
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


def _check_answers(p: Predictor, path: Path) -> None:
    """A loaded model must predict a finite latency for a known cell; else its arrays do not fit its type."""

    try:
        ok = bool(np.isfinite(p.predict([get_genotype("DARTS_V2")])).all())
    except Exception as e:  # wrong shapes or values in a stored model surface here
        raise LpmError(f"the model of {path} does not fit its type {p.type_name!r} ({type(e).__name__});"
                       " fit it again with lpm fit") from None
    if not ok:
        raise LpmError(f"the model of {path} predicts a non-finite latency; fit it again with lpm fit")


def _load_skops(p: Predictor, file: Path, meta: dict[str, Any]) -> str | None:
    """Load a skops model into `p`; the reason it must be refitted, or None when loaded.

    A model holding any type outside skops' defaults and the type's exact allow-list is refused.
    """
    import sklearn
    import skops.io as sio

    data = read_model(file)
    try:
        allowed = skops_types(type(p), data, file)  # a hostile file is refused even when it would be refitted
    except Unreadable as e:  # not a zip, no schema: a damaged file, refit from the training set
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
        except Unreadable:
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

    # this CPU's name (or the older `cpu`) is measured on the CPU; any other name is taken for a GPU's
    where = (f"--device cpu --device-name {device}" if device in ("cpu", cpu_slug(cpu_model()))
             else f"--device cuda --device-name {device}")
    raise LpmError(
        f"no fitted predictor named {name!r} (have: {', '.join(have) or 'none'}; looked in "
        f"{', '.join(str(d) for _, d in zoo_dirs())}); make it with: lpm profile --backend {backend} {where}"
        f" --profile cifar-b1 --samples 10000 --db lpm.db, then lpm fit --db lpm.db --backend {backend}"
        f" --device-name {device} --profile cifar-b1 --predictor mlp --name {name}"
    )


def hardware_note(p: Predictor, name: str, backend_hint: str = "") -> str | None:
    """One line when `p` was fitted on another CPU than this one (None otherwise, and for GPU predictors).

    Predicting for a GPU that is not here is legitimate; a CPU predictor used on another CPU model
    is usually off by a machine-wide factor, which a few measurements here remove (`lpm adapt`).
    """

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
    """The fitted predictor `name` (e.g. `ort-cpu`), from the user's zoo or the bundled one.

    One fitted on another CPU than this one says so (`hardware_note`): a note of the command in the CLI,
    an `LpmNote` warning in library use.
    """
    p = load_predictor(predictor_path(name))
    hw_note = hardware_note(p, name)
    if hw_note:
        note(hw_note)
    return p
