"""Record a store's runtime identity in a fitted predictor: `python stamp_runtime.py DB BACKEND DEVICE PROFILE PREDICTOR_DIR`.

`lpm fit` records the CPU (the hardware fingerprint) in the predictor; the runtime settings that are part
of an OpenVINO measurement (version, threads, streams, hint, pinning, the precision the compiled model
reported) are in every row's `protocol.runtime`. This writes the ones every row agrees on into the
predictor's meta.json as `runtime`, and fails in one line when the rows disagree (a store that mixes
settings must not become one predictor).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

#: the runtime fields that identify an OpenVINO measurement
IDENTITY = ("openvino", "openvino_build", "ov_device_name", "threads", "num_streams", "performance_hint",
            "cpu_pinning", "inference_precision", "inference_precision_requested")


def runtime_identity(db: str, backend: str, device: str, profile: str) -> dict:
    """The IDENTITY fields of every row of backend/device/profile in `db`; SystemExit when rows disagree."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    seen: dict[str, set] = {k: set() for k in IDENTITY}
    rows = 0
    for (proto,) in con.execute("SELECT protocol FROM measurements WHERE backend=? AND device=? AND profile=?",
                                (backend, device, profile)):
        runtime = json.loads(proto).get("runtime", {})
        rows += 1
        for k in IDENTITY:
            seen[k].add(json.dumps(runtime.get(k)))
    if not rows:
        raise SystemExit(f"stamp_runtime: error: {db} holds no {backend}/{device}/{profile} rows")
    mixed = [k for k, v in seen.items() if len(v) > 1]
    if mixed:
        raise SystemExit(f"stamp_runtime: error: the rows disagree on {', '.join(mixed)}: not one runtime identity")
    return {k: json.loads(next(iter(v))) for k, v in seen.items()}


def main(argv: list[str]) -> int:
    """Write the store's runtime identity into PREDICTOR_DIR/meta.json."""
    if len(argv) != 5:
        raise SystemExit(__doc__.splitlines()[0])
    db, backend, device, profile, folder = argv
    meta_file = Path(folder) / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["runtime"] = runtime_identity(db, backend, device, profile)
    meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"{folder}: runtime {json.dumps(meta['runtime'], sort_keys=True)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
