"""`lpm backends`: every registered device backend, its version, and whether it is usable here (and why not)."""

from __future__ import annotations

import argparse
import json
from importlib import metadata

from lpm_zoo.backends.registry import get_backend, list_backends
from lpm_zoo.cli import Command
from lpm_zoo.device import parse_device
from lpm_zoo.errors import LpmError
from lpm_zoo.registry import warn_once


def _configure_backends(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per backend and device kind")
    p.add_argument("--options", action="store_true",
                   help="also each backend's options (--backend-option NAME=VALUE of profile, measure and adapt)")
    p.add_argument("--check", metavar="NAME",
                   help="run the conformance kit on backend NAME (lpm_zoo.backends.testing, no pytest needed): one line per "
                        "check; exit 0 when all pass, 1 when one fails or cannot run here")
    p.add_argument("--device", default="cpu", help="the device --check runs on (default cpu; e.g. cuda:0)")


def _run_backends(args: argparse.Namespace) -> int:
    if args.check is not None:
        return _run_check(args.check, args.device)
    rows = []
    for name in list_backends():
        try:  # a broken plugin is one warning line; every other backend is listed
            b = get_backend(name)
            version = library_version(b.library)
            kinds = [str(k) for k in b.devices]
            options = {k: {"type": o.type.__name__, "help": o.help, **({"choices": list(o.choices)} if o.choices else {}),
                           **({"devices": list(o.devices)} if o.devices else {})}
                       for k, o in b.option_specs().items()}
        except (LpmError, AttributeError, TypeError, ValueError) as e:
            warn_once(f"backend plugin {name!r}: {e}")
            continue
        for kind in kinds:
            ok, why, fault = b.probe(kind)
            if fault:
                warn_once(f"backend plugin {name!r} ({type(b).__module__}) on {kind}: {why}")
            rows.append({"backend": name, "device": kind, "available": ok, "reason": why,
                         "module": type(b).__module__, "version": version, "options": options})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    table = [("BACKEND", "DEVICE", "VERSION", "STATE")] + [
        (r["backend"], r["device"], r["version"] or "-", "available" if r["available"] else f"unavailable: {r['reason']}")
        for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(3)]  # the last column runs to the end of the line
    for t in table:
        print("  ".join(f"{v:<{w}}" for v, w in zip(t, widths)) + f"  {t[3]}")
    if args.options:
        seen = set()
        for r in rows:
            if r["backend"] in seen:
                continue
            seen.add(r["backend"])
            print(f"\n{r['backend']} options:" + ("" if r["options"] else " none"))
            for k, o in r["options"].items():
                values = "|".join(map(str, o["choices"])) if "choices" in o else f"<{o['type']}>"
                where = f" ({', '.join(o['devices'])} only)" if "devices" in o else ""
                print(f"  --backend-option {k}={values}  {o['help']}{where}")
    return 0


def _run_check(name: str, device: str) -> int:
    """`lpm backends --check NAME`: each conformance check in one line, then the count."""
    from lpm_zoo.backends.testing import run_checks  # builds DARTS networks: torch, loaded only for --check

    b = get_backend(name)  # an unknown name: one line listing the known ones (exit 2)
    parse_device(device)  # a malformed device: one line (exit 2)
    counts: dict[str, int] = {}
    for check, state, why in run_checks(b, device):
        counts[state] = counts.get(state, 0) + 1
        print(f"{state:<7}  {check:<20}  {why}".rstrip(), flush=True)
    total, passed = sum(counts.values()), counts.get("pass", 0)
    print(f"{b.name} on {device}: {passed} of {total} checks passed"
          + "".join(f", {n} {s}" for s, n in counts.items() if s != "pass"))
    return 0 if passed == total else 1


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
