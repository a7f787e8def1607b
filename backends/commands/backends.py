"""`lpm backends`: every registered device backend, its version, and whether it is usable here (and why not)."""

from __future__ import annotations

import argparse
import json
from importlib import metadata

from backends.registry import get_backend, list_backends
from lpm_zoo.cli import Command


def _configure_backends(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per backend and device kind")
    p.add_argument("--options", action="store_true",
                   help="also each backend's options (--backend-option NAME=VALUE of profile, measure and adapt)")


def _run_backends(args: argparse.Namespace) -> int:


    rows = []
    for name in list_backends():
        b = get_backend(name)
        version = library_version(b.library)
        for kind in b.devices:
            ok, why = b.available(kind)
            rows.append({"backend": name, "device": kind, "available": ok, "reason": why,
                         "module": type(b).__module__, "version": version,
                         "options": {k: {"type": t.__name__, "help": h} for k, (t, h) in b.options.items()}})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    for r in rows:
        state = "available" if r["available"] else f"unavailable: {r['reason']}"
        print(f"{r['backend']:<8} {r['device']:<5} {r['version'] or '-':<22} {state}")
    if args.options:
        seen = set()
        for r in rows:
            if r["backend"] in seen:
                continue
            seen.add(r["backend"])
            print(f"\n{r['backend']} options:" + ("" if r["options"] else " none"))
            for k, o in r["options"].items():
                print(f"  --backend-option {k}=<{o['type']}>  {o['help']}")
    return 0


def library_version(dists: tuple[str, ...]) -> str:
    """'name version' of the first installed distribution of `dists` ("" when none is), read without importing it."""
    for dist in dists:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return ""


command = Command(help="list device backends and whether each is usable here (and why not)",
                           configure=_configure_backends, run=_run_backends)


# --- shared options ----------------------------------------------------------------------
