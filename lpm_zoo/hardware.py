"""Which hardware a measurement or a predictor belongs to: a fingerprint and a short slug.

A latency holds on the machine that measured it. Every store and fitted predictor records the
fingerprint of the hardware it came from (CPU model, logical cores, the ISA extensions that
change kernels, OS; a GPU backend adds the GPU's), so `lpm zoo list` can say which machine a
predictor is for and `lpm predict` / `lpm search` can warn when it is used on another CPU. The
slug (`xeon`, `epyc`, `p100`) names devices by default: `ort-xeon`, `trt-p100`. Reading the
host's facts needs no runtime, so it lives in the core; GPU facts come from `backends.device`.
"""

from __future__ import annotations

import os
import platform
import re
from itertools import islice
from pathlib import Path
from typing import Any

# ISA extensions that decide which kernels a runtime picks (x86: AVX generations, VNNI, AMX; Arm: SVE)
KEY_ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
           "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")
# (pattern in a CPU model string, slug), first match wins
_CPU_SLUGS = (
    (r"\bxeon\b", "xeon"), (r"\bepyc\b", "epyc"), (r"threadripper", "threadripper"), (r"\bryzen\b", "ryzen"),
    (r"\bcore\(tm\)\s*ultra", "core-ultra"), (r"\bi([3579])-", r"i\1"), (r"\bapple\s+(m\d)", r"\1"),
    (r"graviton\s*(\d*)", r"graviton\1"), (r"neoverse[- ]?(\w+)", r"neoverse-\1"), (r"\batom\b", "atom"),
    (r"\bcortex-?(\w+)", r"cortex-\1"),
)
# Environment variables that cap the ISA a runtime's kernels use (ATen's vectorised ops, oneDNN's
# convolutions, MKL): set, they make the same chip time like one without the capped extensions.
ISA_LIMIT_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model() -> str:
    """The CPU's model string (from /proc/cpuinfo where there is one)."""
    for line in _cpuinfo_lines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()[:200]
    return (platform.processor() or platform.machine() or "unknown cpu")[:200]


def _cpuinfo_lines() -> list[str]:
    info = Path("/proc/cpuinfo")
    try:
        return info.read_text(errors="replace").splitlines()[:200] if info.is_file() else []
    except OSError:
        return []


def cpu_isa() -> list[str]:
    """The key ISA extensions of this CPU (`KEY_ISA` present in its flags), sorted."""
    for line in _cpuinfo_lines():
        if line.lower().startswith(("flags", "features")):
            have = set(line.split(":", 1)[1].split())
            return sorted(f for f in KEY_ISA if f in have)
    return []


def isa_limit() -> dict[str, str]:
    """The ISA caps set in this process's environment (`ISA_LIMIT_VARS`), values clipped."""
    return {v: os.environ[v].strip()[:32] for v in ISA_LIMIT_VARS if os.environ.get(v, "").strip()}


def cpu_fingerprint() -> dict[str, Any]:
    """This host's CPU: model string, logical cores, key ISA extensions (and any cap on them), OS."""
    fp: dict[str, Any] = {"kind": "cpu", "model": cpu_model(), "logical_cores": os.cpu_count() or 1,
                          "isa": cpu_isa(), "os": f"{platform.system()} {platform.release()}"[:80],
                          "machine": platform.machine()}
    limit = isa_limit()
    if limit:
        fp["isa_limit"] = limit
    return fp


def cpu_slug(model: str) -> str:
    """A short name for a CPU model string: 'Intel(R) Xeon(R) Platinum 8488C' -> 'xeon'."""
    low = model.lower()
    for pattern, slug in _CPU_SLUGS:
        m = re.search(pattern, low)
        if m:
            return re.sub(r"[^a-z0-9-]+", "", m.expand(slug)) or "cpu"
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"\((r|tm)\)", "", low))
             if w and w not in ("intel", "amd", "cpu", "processor")]
    return words[0][:16] if words else "cpu"


def host_slug() -> str:
    """This host's CPU slug, with the ISA cap when one is set ('xeon', or 'xeon-avx2' under
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2), so capped measurements file apart."""
    caps = []
    for value in isa_limit().values():
        v = re.sub(r"[^a-z0-9]+", "", value.lower())[:16]
        if v and v not in caps:
            caps.append(v)
    return "-".join([cpu_slug(cpu_model()), *caps])


def same_hardware(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool | None:
    """Whether two fingerprints name the same hardware (model, ISA and any ISA cap); None if unknown."""
    if not isinstance(a, dict) or not isinstance(b, dict) or not a.get("model") or not b.get("model"):
        return None
    same = a.get("kind") == b.get("kind") and a["model"] == b["model"]
    if same and a.get("isa") and b.get("isa"):
        same = a["isa"] == b["isa"]
    return same and (a.get("isa_limit") or {}) == (b.get("isa_limit") or {})


def describe(fp: dict[str, Any] | None) -> str:
    """A one-phrase summary of a fingerprint for tables: model, cores, the top ISA extension."""
    if not isinstance(fp, dict) or not fp.get("model"):
        return "unknown hardware"
    if fp.get("kind") == "cuda":
        return str(fp["model"])[:40]
    isa = [f for f in ("amx_tile", "avx512f", "avx2", "sve", "asimd") if f in (fp.get("isa") or [])]
    cores = f", {fp['logical_cores']} cores" if fp.get("logical_cores") else ""
    limit = fp.get("isa_limit")
    caps = [str(v)[:12] for v in islice(limit.values(), len(ISA_LIMIT_VARS))] if isinstance(limit, dict) else []
    capped = f", capped {','.join(caps)}" if caps else ""  # a file's fingerprint is data: clipped, bounded
    return f"{str(fp['model'])[:40]}{cores}{', ' + isa[0] if isa else ''}{capped}"
