"""The blocking steps of a load, run on the model's own thread: resolve the spec and the
device chain (with the bytes the model is expected to take), load on the first device of
the chain that can, and measure what the load took."""

from __future__ import annotations

import logging
from pathlib import Path

from hfserve.errors import ModelUnavailable
from hfserve.registry import build_spec
from hfserve.runtime.lifecycle import footprint
from hfserve.runtime.lifecycle.entry import ModelEntry, brief
from hfserve.runtime.lifecycle.placement import Choice, choices
from hfserve.runtime.lifecycle.skill_table import classes_for
from hfserve.runtime.workers import new_skill

log = logging.getLogger("hfserve.manager")


def resolve(entry: ModelEntry, cache_dir: Path, memory_limits: dict[str, int]
            ) -> list[Choice]:
    """The spec and the device chain (on the model's thread: it reads files)."""
    if entry.spec is None:
        entry.spec = build_spec(entry.config)
    classes = classes_for(entry.spec)
    chain = choices(entry.spec, entry.config, classes, cache_dir,
                    exclude=frozenset(entry.excluded), memory_limits=memory_limits)
    if not chain:
        raise ModelUnavailable("no device can run the model")
    estimate = footprint.estimate(entry.spec, chain[0].placement.dtype,
                                  entry.config.max_concurrent)
    if entry.measured_bytes is not None and (
            chain[0].device_id.startswith("cuda")
            or footprint.plausible(entry.measured_bytes, estimate)):
        estimate = entry.measured_bytes
    entry.estimated_bytes = estimate
    return chain


def measure(entry: ModelEntry, before: tuple[int, int | None]) -> None:
    """Keep what the load really took, for the next estimate of this model."""
    rss, cuda = before
    after = footprint.cuda_bytes(entry.skill.placement.device) if cuda is not None else None
    delta = (after - cuda) if after is not None else footprint.process_bytes() - rss
    entry.measured_bytes = max(delta, 0)

def load_on_chain(entry: ModelEntry, chain: list[Choice]) -> None:
    """Load on the first device of the chain that can, falling down it on failure."""
    classes = classes_for(entry.spec)
    for choice in chain:
        cls = next(c for c in classes if choice.placement.backend in c.backends)
        skill = new_skill(cls, entry, choice.device_id)
        log.info("model %s: loading on %s (%s, %s)", entry.name, choice.device_id,
                 choice.placement.backend, choice.placement.dtype)
        try:
            skill.placement = choice.placement
            skill.worker_init()
            skill.load(choice.placement)
        except Exception as exc:  # fall back to the next device, remember why
            entry.attempts.append({"device": choice.device_id, "backend":
                                   choice.placement.backend, "error": brief(exc)})
            log.warning("model %s failed on %s: %s", entry.name, choice.device_id, exc)
            skill.unload()
            continue
        entry.skill = skill
        entry.device_id = choice.device_id
        entry.placement_reason = choice.reason
        return
    tried = "; ".join(f"{a['device']}: {a['error']}" for a in entry.attempts)
    raise ModelUnavailable(f"no device could load the model ({tried})")
