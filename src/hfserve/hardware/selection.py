"""Choosing where a model runs: dtype, memory fit, and the ordered fallback chain."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hfserve.hardware import compatibility
from hfserve.hardware.compatibility import Support
from hfserve.hardware.device import KINDS, OPENVINO_DEVICE, Device
from hfserve.types import Family

DTYPE_BYTES: Mapping[str, float] = {
    "float64": 8,
    "float32": 4,
    "bfloat16": 2,
    "float16": 2,
    "int8": 1,
    "uint8": 1,
    "int4": 0.5,
}

DTYPE_ALIASES: Mapping[str, str] = {
    "fp64": "float64",
    "double": "float64",
    "fp32": "float32",
    "float": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
}

_GPU_ORDER = ("bfloat16", "float16", "float32")
DEFAULT_DTYPES: Mapping[str, tuple[str, ...]] = {
    "cuda": _GPU_ORDER,
    "rocm": _GPU_ORDER,
    "mps": _GPU_ORDER,
    "openvino": ("float32",),
    "qnn": ("float32",),
    "cpu": ("float32",),
}
"""Per kind, the dtypes to use when neither the model config nor the checkpoint decides,
first supported wins."""

CHECKPOINT_DTYPES: frozenset[str] = frozenset({"bfloat16", "float16"})
"""Checkpoint dtypes a model runs in, unasked, wherever the device computes them natively
(a bf16 checkpoint on a CPU with AVX512-BF16 or AMX, on OpenVINO there, on a GPU). Loading
such a checkpoint in float32 doubles its memory for precision it never had; float32 itself
is not here, so a float32 checkpoint keeps the kind's default: float32 on CPUs, half
precision on GPUs as vLLM and TEI do. The cost (docs/hardware.md): greedy output then
depends on the batch a request shares; ``dtype: float32`` gives batch invariance back."""

OPENVINO_TARGET_ORDER: tuple[str, ...] = ("GPU", "NPU", "CPU")
GIB = 1 << 30


class HardwareError(ValueError):
    """No device, or not the requested one, can run the model as asked."""


def normalize_dtype(name: str) -> str:
    """Canonical dtype name: "fp16" -> "float16", "torch.bfloat16" -> "bfloat16"."""
    key = name.strip().lower().removeprefix("torch.")
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        raise HardwareError(
            f"unknown dtype {name!r}; expected one of {', '.join(DTYPE_BYTES)}"
        )
    return key


def memory_estimate(
    parameters: int, dtype: str, headroom: float = 0.2, kv_bytes: int = 0
) -> int:
    """Bytes to hold ``parameters`` weights in ``dtype``, plus headroom and KV cache."""
    if parameters < 0 or headroom < 0 or kv_bytes < 0:
        raise ValueError("parameters, headroom and kv_bytes must not be negative")
    return (
        math.ceil(parameters * DTYPE_BYTES[normalize_dtype(dtype)] * (1 + headroom))
        + kv_bytes
    )


def best_dtype(device: Device, preferred: str | None = None,
               checkpoint: str | None = None) -> str:
    """The dtype to run on ``device``: ``preferred`` when the device supports it.

    Without a preference, a half-precision ``checkpoint`` dtype the device runs natively
    (``CHECKPOINT_DTYPES``); otherwise GPUs take bfloat16, else float16, else float32, and
    other kinds float32. A preference the device does not support raises ``HardwareError``.
    """
    if preferred is not None and preferred.strip().lower() != "auto":
        dtype = normalize_dtype(preferred)
        if dtype not in device.dtypes:
            raise HardwareError(
                f"{device.id} does not support {dtype}; "
                f"it supports {', '.join(device.dtypes)}"
            )
        return dtype
    own = _known_dtype(checkpoint)
    if own in CHECKPOINT_DTYPES and own in device.dtypes:
        return own
    for dtype in DEFAULT_DTYPES[device.kind]:
        if dtype in device.dtypes:
            return dtype
    return device.dtypes[0] if device.dtypes else "float32"


def _known_dtype(name: str | None) -> str | None:
    """``name`` made canonical, or None when it is missing or not a dtype we know (a
    checkpoint's config may say anything)."""
    try:
        return None if name is None else normalize_dtype(name)
    except HardwareError:
        return None


@dataclass(frozen=True)
class Candidate:
    """One step of the fallback chain, with why it sits where it does."""

    device: Device
    dtype: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """The ordered fallback chain, and the devices left out with the reason for each."""

    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def primary(self) -> Candidate:
        return self.candidates[0]

    def ids(self) -> list[str]:
        return [candidate.device.id for candidate in self.candidates]


def _gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


def _rank(device: Device) -> tuple[int, int, int]:
    target = str(device.details.get(OPENVINO_DEVICE, "")).split(".")[0]
    order = (
        OPENVINO_TARGET_ORDER.index(target) if target in OPENVINO_TARGET_ORDER else 0
    )
    return KINDS.index(device.kind), order, device.index or 0


def _match(requested: str, devices: list[Device]) -> list[Device]:
    key = requested.strip().lower()
    field_of = (
        (lambda device: device.kind)
        if key in KINDS
        else (lambda device: device.id.lower())
    )
    matches = [device for device in devices if field_of(device) == key]
    if matches:
        return matches
    if key.split(":")[0] not in KINDS:
        raise HardwareError(
            f"unknown device {requested!r}; "
            f"give a kind ({', '.join(KINDS)}) or an id such as cuda:0"
        )
    present = ", ".join(device.id for device in devices) or "none"
    raise HardwareError(
        f"requested device {requested!r} is not present; detected: {present}"
    )


def _needed(needed_bytes: int | None, parameters: int | None, dtype: str) -> int | None:
    if needed_bytes is not None:
        return needed_bytes
    return None if parameters is None else memory_estimate(parameters, dtype)


def plan(
    family: Family | str,
    devices: Iterable[Device],
    *,
    requested: str | None = None,
    needed_bytes: int | None = None,
    parameters: int | None = None,
    dtype: str | None = None,
    checkpoint_dtype: str | None = None,
    profile: Mapping[str, float] | None = None,
) -> Plan:
    """Order the devices that can run a model of ``family`` into a fallback chain.

    ``requested`` (a kind such as "cuda" or an id such as "openvino:GPU") pins the chain
    to the devices it names and raises ``HardwareError`` when none of them can run the
    model. Otherwise compatible devices that fit are ordered by ``profile`` (device
    id -> measured throughput, higher first; unmeasured after measured), then by
    ``KINDS`` priority, with the CPU last. Memory need is ``needed_bytes``, or estimated
    per candidate dtype from ``parameters``; unknown free memory counts as fitting. The
    dtype per device is ``best_dtype`` of ``dtype`` and the model's ``checkpoint_dtype``.
    """
    if needed_bytes is not None and parameters is not None:
        raise ValueError("give needed_bytes or parameters, not both")
    family = Family(family)
    devices = list(devices)
    explicit = requested is not None and requested.strip().lower() not in ("", "auto")
    pool = _match(requested, devices) if explicit else devices
    profile = profile or {}

    if explicit and all(
        compatibility.support(family, d.kind) is Support.NONE for d in pool
    ):
        kinds = ", ".join(compatibility.compatible_kinds(family))
        raise HardwareError(
            f"requested device {requested!r} cannot run {family.value} models; "
            f"use one of: {kinds}"
        )

    fitting: list[tuple[Device, str, Support]] = []
    skipped: list[tuple[str, str]] = []
    for device in pool:
        level = compatibility.support(family, device.kind)
        if level is Support.NONE:
            skipped.append(
                (device.id, f"{device.kind} does not run {family.value} models")
            )
            continue
        try:
            chosen = best_dtype(device, dtype, checkpoint_dtype)
        except HardwareError as exc:
            skipped.append((device.id, str(exc)))
            continue
        need = _needed(needed_bytes, parameters, chosen)
        if (
            need is not None
            and device.memory_free is not None
            and need > device.memory_free
        ):
            skipped.append(
                (device.id, f"needs {_gib(need)}, has {_gib(device.memory_free)} free")
            )
            continue
        fitting.append((device, chosen, level))

    if not fitting:
        why = (
            "; ".join(f"{device_id}: {reason}" for device_id, reason in skipped)
            or "no devices"
        )
        subject = (
            f"requested device {requested!r} cannot" if explicit else "no device can"
        )
        raise HardwareError(f"{subject} run this {family.value} model ({why})")

    def order(
        entry: tuple[Device, str, Support],
    ) -> tuple[bool, bool, float, tuple[int, int, int]]:
        device = entry[0]
        score = profile.get(device.id)
        return device.kind == "cpu", score is None, -(score or 0.0), _rank(device)

    fitting.sort(key=order)
    candidates = []
    for position, (device, chosen, level) in enumerate(fitting):
        reason = _reason(device, position, explicit, profile)
        if level is Support.PARTIAL:
            reason += " (partial support)"
        candidates.append(Candidate(device, chosen, reason))
    return Plan(tuple(candidates), tuple(skipped))


def _reason(
    device: Device, position: int, explicit: bool, profile: Mapping[str, float]
) -> str:
    if explicit:
        return "requested"
    if device.kind == "cpu":
        return "fallback"
    score = profile.get(device.id)
    if score is None:
        return "priority"
    return f"{'fastest measured' if position == 0 else 'measured'} ({score:.1f}/s)"
