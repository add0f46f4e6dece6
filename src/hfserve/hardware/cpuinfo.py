"""What /proc/cpuinfo says about the CPU: its name, ISA flags and native dtypes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ISA_FLAGS: tuple[str, ...] = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)
"""Flags that matter for inference speed and dtype support, in display order."""

ARCH_FAMILIES: Mapping[str, str] = {
    "x86_64": "x86",
    "amd64": "x86",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm",
    "arm64": "arm",
    "armv8l": "arm",
    "armv7l": "arm",
}

NATIVE_DTYPES: Mapping[str, Mapping[str, frozenset[str]]] = {
    "x86": {
        "bfloat16": frozenset({"avx512_bf16", "amx_bf16"}),
        "float16": frozenset({"avx512_fp16", "amx_fp16"}),
    },
    "arm": {
        "bfloat16": frozenset({"bf16"}),
        "float16": frozenset({"asimdhp"}),
    },
}
"""Per architecture family and dtype: any one of these flags means native support."""

_FLAG_KEYS = ("flags", "features")
_NAME_KEYS = ("model name", "hardware", "cpu model")
_ALIASES: Mapping[str, str] = {"asimd": "neon"}


@dataclass(frozen=True)
class CpuFeatures:
    """The parsed facts about one CPU."""

    name: str
    arch: str
    flags: frozenset[str]

    @property
    def isa(self) -> tuple[str, ...]:
        """The inference-relevant flags present, in ``ISA_FLAGS`` order."""
        return tuple(flag for flag in ISA_FLAGS if flag in self.flags)

    @property
    def dtypes(self) -> tuple[str, ...]:
        """float32 always, then each dtype the CPU computes natively."""
        native = NATIVE_DTYPES.get(ARCH_FAMILIES.get(self.arch, ""), {})
        found = tuple(dtype for dtype, flags in native.items() if flags & self.flags)
        return ("float32", *found)


def _fields(text: str) -> dict[str, str]:
    """Key/value pairs of the first processor block; keys lower-cased."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def parse(text: str, arch: str, fallback_name: str = "") -> CpuFeatures:
    """Read a /proc/cpuinfo text. ``arch`` is the machine name ("x86_64", "aarch64")."""
    fields = _fields(text)
    raw_flags = next((fields[key] for key in _FLAG_KEYS if key in fields), "")
    flags = set(raw_flags.lower().split())
    flags.update(_ALIASES[flag] for flag in list(flags) if flag in _ALIASES)
    name = (
        next((fields[key] for key in _NAME_KEYS if fields.get(key)), "")
        or fallback_name
        or arch
    )
    return CpuFeatures(name=name, arch=arch.lower(), flags=frozenset(flags))
