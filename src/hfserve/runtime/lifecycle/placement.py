"""Where a model runs: the hardware layer's fallback chain, narrowed to the backends the skill
can load on and the backend the model config asks for, turned into Placements."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hfserve.backends.placement import BackendOptions, Placement
from hfserve.errors import InvalidRequest
from hfserve.hardware import Device, HardwareError, cpu_quota, detect, plan
from hfserve.hardware.device import OPENVINO_DEVICE
from hfserve.hardware.profiles import ProfileStore
from hfserve.model_config import ModelConfig
from hfserve.skills.base import Skill
from hfserve.types import ModelSpec

# Which backends can drive each kind of device (the device's own backend first).
KIND_BACKENDS: dict[str, tuple[str, ...]] = {
    "cuda": ("torch", "onnxruntime"),
    "rocm": ("torch",),
    "mps": ("torch",),
    "openvino": ("openvino",),
    "qnn": ("onnxruntime",),
    "cpu": ("torch", "onnxruntime"),
}


@dataclass(frozen=True)
class Choice:
    device_id: str
    placement: Placement
    reason: str


def profile_key(spec: ModelSpec) -> str:
    """Profiles are kept per model files, however the source was spelled."""
    return str(spec.path / spec.gguf_file) if spec.gguf_file else str(spec.path)


def backend_for(device: Device, mc: ModelConfig, skills: list[type[Skill]]) -> str | None:
    """The backend to run the model on ``device``, or None when no skill can."""
    wanted = device.backend if mc.backend == "auto" else mc.backend
    if wanted in KIND_BACKENDS.get(device.kind, ()) and any(wanted in s.backends
                                                             for s in skills):
        return wanted
    return None


def within_limits(devices: list[Device], limits: dict[str, int]) -> list[Device]:
    """Devices with free memory capped by the configured budget (by id, then by kind)."""
    out = []
    for d in devices:
        limit = limits.get(d.id, limits.get(d.kind))
        if limit is not None:
            free = limit if d.memory_free is None else min(d.memory_free, limit)
            d = replace(d, memory_free=free)
        out.append(d)
    return out


def threads_for(mc: ModelConfig) -> int:
    """The model's intra-op threads: its own or the server's ``threads``, else every CPU the
    process may use (``cpu_quota``: affinity mask and cgroup quota), for each model.

    Not a budget divided among the models: an idle model's threads cost nothing, and on
    OpenVINO, where both demo models run by default, the threads of compiled models come from
    one process-wide pool. Whether a divided budget is faster with several models busy at
    once is not measured yet; ``threads`` per model sets it by hand.
    """
    return mc.threads or cpu_quota()


def choices(spec: ModelSpec, mc: ModelConfig, skills: list[type[Skill]], cache_dir: Path,
            profile: dict[str, float] | None = None, exclude: frozenset[str] = frozenset(),
            memory_limits: dict[str, int] | None = None) -> list[Choice]:
    """The ordered devices to try for this model; raises InvalidRequest when none can."""
    if profile is None:
        profile = ProfileStore(Path(cache_dir) / "profiles.sqlite").scores(profile_key(spec))
    usable = {d.id: backend_for(d, mc, skills) for d in detect()}
    devices = within_limits([d for d in detect() if usable[d.id] and d.id not in exclude],
                            memory_limits or {})
    try:
        chain = plan(spec.family, devices, requested=mc.device, parameters=spec.parameters,
                     dtype=mc.dtype, checkpoint_dtype=spec.checkpoint_dtype, profile=profile)
    except HardwareError as exc:
        raise InvalidRequest(f"cannot place model {spec.name!r}: {exc}", param="device") from exc
    threads = threads_for(mc)
    return [Choice(device_id=c.device.id,
                   placement=Placement(
                       device=c.device.torch_device(), dtype=c.dtype, threads=threads,
                       backend=usable[c.device.id],
                       options=BackendOptions.of(
                           mc, cache_dir=cache_dir, device_kind=c.device.kind,
                           ov_device=c.device.details.get(OPENVINO_DEVICE, "CPU"))),
                   reason=c.reason)
            for c in chain.candidates]
