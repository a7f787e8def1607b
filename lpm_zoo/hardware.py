"""Which hardware a measurement or a predictor belongs to: a fingerprint and a short slug.

A latency holds on the machine that measured it. Every store and fitted predictor records the
fingerprint of the hardware it came from (CPU model, logical cores, the ISA extensions that
change kernels, OS; a GPU backend adds the GPU's), so `lpm zoo list` can say which machine a
predictor is for and `lpm predict` / `lpm search` can warn when it is used on another CPU. The
slug (`xeon`, `epyc`, `p100`) names devices by default: `ort-xeon`, `trt-p100`. Reading the
host's facts needs no runtime, so it lives in the core; GPU facts come from `lpm_zoo.backends.device`.

A host identity can be *stated* instead of read (`LPM_HOST_IDENTITY`, see `HOST_IDENTITIES`), so
that what depends on "which CPU is this" can be tried, and tested, for CPUs one does not have; a
stated fingerprint says so (`"stated": true`).
"""

from __future__ import annotations

import json
import os
import platform
import re
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

from lpm_zoo.errors import LpmError, clip

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


#: The environment variable that states the host identity: a name in `HOST_IDENTITIES`, or a JSON object
#: with the same fields (`model`; optional `isa`, `logical_cores`, `machine`).
HOST_IDENTITY_VAR = "LPM_HOST_IDENTITY"
_X86_512 = ["avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma", "sse4_2"]
#: Named host identities: the CPUs the test suite runs as (tests pin one; CI runs the host-sensitive tests
#: as each). `xeon` is the dev machine the shipped data came from, as its /proc/cpuinfo reads.
HOST_IDENTITIES: dict[str, dict[str, Any]] = {
    "xeon": {"model": "Intel(R) Xeon(R) Processor", "machine": "x86_64", "logical_cores": 2,
             "isa": sorted([*_X86_512, "avx512_fp16", "avx_vnni"])},
    "epyc": {"model": "AMD EPYC 9R14 96-Core Processor", "machine": "x86_64", "logical_cores": 2, "isa": _X86_512},
    "graviton3": {"model": "Neoverse-V1", "machine": "aarch64", "logical_cores": 2, "isa": ["asimd", "sve"]},
}
# Arm's /proc/cpuinfo has no model name: (implementer, part) as the kernel prints them, to the core's name
_ARM_PARTS = {("0x41", "0xd0c"): "Neoverse-N1", ("0x41", "0xd40"): "Neoverse-V1", ("0x41", "0xd49"): "Neoverse-N2",
              ("0x41", "0xd4f"): "Neoverse-V2", ("0x41", "0xd84"): "Neoverse-V3", ("0x41", "0xd8e"): "Neoverse-N3",
              ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd41"): "Cortex-A78", ("0xc0", "0xac3"): "Ampere-1",
              ("0x46", "0x001"): "A64FX"}


def stated_identity() -> dict[str, Any] | None:
    """The host identity stated in `LPM_HOST_IDENTITY` (checked), or None to read this host's own."""
    text = os.environ.get(HOST_IDENTITY_VAR, "").strip()
    return _parse_identity(text) if text else None


@lru_cache(maxsize=8)
def _parse_identity(text: str) -> dict[str, Any]:
    if text in HOST_IDENTITIES:
        return HOST_IDENTITIES[text]
    how = f"use one of {', '.join(HOST_IDENTITIES)} or a JSON object with 'model' (and 'isa', 'logical_cores', 'machine')"
    if not text.startswith("{"):
        raise LpmError(f"{HOST_IDENTITY_VAR}={clip(text, 40)} is not a known host identity; {how}")
    try:
        obj = json.loads(text[:4096])
    except ValueError:
        raise LpmError(f"{HOST_IDENTITY_VAR} is not valid JSON (at most 4096 characters); {how}") from None
    ok = (isinstance(obj, dict) and set(obj) <= {"model", "isa", "logical_cores", "machine"}
          and isinstance(obj.get("model"), str) and 0 < len(obj["model"]) <= 200 and obj["model"].isprintable()
          and isinstance(obj.get("isa", []), list) and all(i in KEY_ISA for i in obj.get("isa", []))
          and type(obj.get("logical_cores", 1)) is int and 1 <= obj.get("logical_cores", 1) <= 4096
          and obj.get("machine", "x86_64") in ("x86_64", "aarch64", "arm64", "ppc64le", "s390x", "riscv64"))
    if not ok:
        raise LpmError(f"{HOST_IDENTITY_VAR} holds fields out of range (model: printable text up to 200 characters; "
                       f"isa: names from {', '.join(KEY_ISA)}; logical_cores: 1 to 4096); {how}")
    return {"machine": "x86_64", "logical_cores": 1, "isa": [], **obj}


#: Set to 1 (tests only) to let `lpm fit` / `lpm adapt` use rows measured under a stated identity.
ALLOW_STATED_VAR = "LPM_ALLOW_STATED_ROWS"


def is_stated(fp: dict[str, Any] | None) -> bool:
    """Whether a fingerprint was stated (`LPM_HOST_IDENTITY`) rather than read; a GPU's looks at its host CPU."""
    if not isinstance(fp, dict):
        return False
    host = fp.get("host")
    return fp.get("stated") is True or (isinstance(host, dict) and host.get("stated") is True)


def check_stated_rows(stated: int, what: str) -> None:
    """Refuse, in one line, to fit on `stated` rows measured under a stated identity, unless ALLOW_STATED_VAR=1:
    a stated identity is for tests, its timings are this machine's under another machine's name."""
    if stated and os.environ.get(ALLOW_STATED_VAR, "").strip() != "1":
        raise LpmError(f"{what}: {stated} rows were measured under a stated host identity ({HOST_IDENTITY_VAR}, for "
                       f"tests only): their timings are not the named machine's. Measure without {HOST_IDENTITY_VAR}"
                       f" (or, in tests, set {ALLOW_STATED_VAR}=1)")


def cpu_model() -> str:
    """The CPU's model string (from /proc/cpuinfo where there is one; the stated identity's, if set)."""
    stated = stated_identity()
    if stated:
        return stated["model"]
    return model_from_cpuinfo(_cpuinfo_lines()) or (platform.processor() or platform.machine() or "unknown cpu")[:200]


def model_from_cpuinfo(lines: list[str]) -> str:
    """The model string in /proc/cpuinfo's lines: x86's `model name`, or an Arm core named by its
    implementer and part (Arm kernels print no model name); "" when the lines name none."""
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware") and value.strip():
            return value.strip()[:200]
        if key in ("cpu implementer", "cpu part"):
            fields.setdefault(key, value.strip().lower())
    if "cpu implementer" in fields and "cpu part" in fields:
        impl, part = fields["cpu implementer"][:8], fields["cpu part"][:8]
        return _ARM_PARTS.get((impl, part), f"Arm implementer {impl} part {part}")
    return ""


def _cpuinfo_lines() -> list[str]:
    info = Path("/proc/cpuinfo")
    try:
        return info.read_text(errors="replace").splitlines()[:200] if info.is_file() else []
    except OSError:
        return []


def cpu_isa() -> list[str]:
    """The key ISA extensions of this CPU (`KEY_ISA` present in its flags; the stated identity's), sorted."""
    stated = stated_identity()
    if stated:
        return sorted(stated["isa"])
    for line in _cpuinfo_lines():
        if line.lower().startswith(("flags", "features")):
            have = set(line.split(":", 1)[1].split())
            return sorted(f for f in KEY_ISA if f in have)
    return []


# The values each cap takes (torch's DispatchStub, oneDNN's and MKL's documented lists); compared ignoring case
_ONEDNN_ISA = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
               "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "DEFAULT", "ALL")
ISA_LIMIT_VALUES: dict[str, tuple[str, ...]] = {
    "ATEN_CPU_CAPABILITY": ("default", "avx2", "avx512", "sve256", "vsx", "zvector"),
    "ONEDNN_MAX_CPU_ISA": _ONEDNN_ISA,
    "DNNL_MAX_CPU_ISA": _ONEDNN_ISA,
    "MKL_ENABLE_INSTRUCTIONS": ("SSE4_2", "AVX", "AVX2", "AVX2_E1", "AVX512", "AVX512_E1", "AVX512_E2", "AVX512_E3",
                                "AVX512_E4", "AVX512_E5", "AVX10"),
}


def isa_limit() -> dict[str, str]:
    """The ISA caps set in this process's environment (`ISA_LIMIT_VARS`); a value the runtime does not know
    is an LpmError (it would be ignored by the runtime yet mark the fingerprint as capped)."""
    caps = {}
    for var in ISA_LIMIT_VARS:
        value = os.environ.get(var, "").strip()
        if not value:
            continue
        known = ISA_LIMIT_VALUES[var]
        if value.lower() not in (k.lower() for k in known):
            raise LpmError(f"{var}={clip(value, 40)} is not a value its runtime knows ({', '.join(known)}); "
                           f"unset it or use one of those")
        caps[var] = value
    return caps


def check_environment() -> None:
    """Refuse, before any work, a malformed stated host identity or ISA cap in the environment."""
    stated_identity()
    isa_limit()


def cpu_fingerprint() -> dict[str, Any]:
    """This host's CPU: model string, logical cores, key ISA extensions (and any cap on them), OS;
    a stated identity (`LPM_HOST_IDENTITY`) replaces the first three and the machine, and says so."""
    stated = stated_identity()
    fp: dict[str, Any] = {"kind": "cpu", "model": cpu_model(), "logical_cores": os.cpu_count() or 1,
                          "isa": cpu_isa(), "os": f"{platform.system()} {platform.release()}"[:80],
                          "machine": platform.machine()}
    if stated:
        fp.update(logical_cores=stated["logical_cores"], machine=stated["machine"], stated=True)
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
