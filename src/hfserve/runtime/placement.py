"""Where a model runs: the hardware layer's fallback chain, narrowed to the backends the
skill can load on, turned into Placements the skill understands."""

from __future__ import annotations

from dataclasses import dataclass

from hfserve.config import ModelConfig
from hfserve.errors import InvalidRequest
from hfserve.hardware import HardwareError, detect, plan
from hfserve.skills.base import Placement, Skill
from hfserve.types import ModelSpec


@dataclass(frozen=True)
class Choice:
    device_id: str
    placement: Placement
    reason: str


def choices(spec: ModelSpec, mc: ModelConfig, skill_cls: type[Skill]) -> list[Choice]:
    """The ordered devices to try for this model; raises InvalidRequest when none can."""
    devices = [d for d in detect() if d.backend in skill_cls.backends]
    try:
        chain = plan(spec.family, devices, requested=mc.device, parameters=spec.parameters,
                     dtype=mc.dtype)
    except HardwareError as exc:
        raise InvalidRequest(f"cannot place model {spec.name!r}: {exc}", param="device") from exc
    return [Choice(device_id=c.device.id,
                   placement=Placement(device=c.device.torch_device(), dtype=c.dtype,
                                       threads=mc.threads, backend=c.device.backend),
                   reason=c.reason)
            for c in chain.candidates]
