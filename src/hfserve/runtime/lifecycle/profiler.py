"""``hfserve profile``: load a model on each candidate device, run a fixed workload, and store
throughput, latency and memory so that automatic placement prefers the fastest device."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from hfserve.hardware.profiles import Measurement, ProfileStore
from hfserve.model_config import ModelConfig
from hfserve.registry import build_spec
from hfserve.runtime.lifecycle.placement import choices, profile_key
from hfserve.runtime.lifecycle.skill_table import classes_for
from hfserve.skills.base import BatchSkill, GenerativeSkill, Skill
from hfserve.types import Pick, SamplingParams

SENTENCE = "A model server turns requests into batches and batches into answers, quickly."


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _encoder_workload(skill: BatchSkill, seconds: float) -> tuple[float, float, str]:
    items = [skill.prepare(f"{SENTENCE} ({i})", {}) for i in range(32)]
    skill.run_batch(items)  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        skill.run_batch(items)
        times.append(time.perf_counter() - start)
    return len(items) * len(times) / sum(times), statistics.median(times) * 1000, "items/s"


def _generation_workload(skill: GenerativeSkill, seconds: float) -> tuple[float, float, str]:
    prompt = skill.encode_text(SENTENCE)
    params = SamplingParams(temperature=0, max_tokens=32)
    steps = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(steps) < 32:
        states, logits, _ = skill.prefill([prompt], [None])
        for _ in range(32):
            token = skill.sample(logits, [Pick(0, params, None, [])])[0].token_id
            start = time.perf_counter()
            logits = skill.decode(states, [token])
            steps.append(time.perf_counter() - start)
        skill.release(states[0])
    return len(steps) / sum(steps), statistics.median(steps) * 1000, "tokens/s"


WORKLOADS: dict[type[Skill], Callable[..., tuple[float, float, str]]] = {
    BatchSkill: _encoder_workload,
    GenerativeSkill: _generation_workload,
}


def profile(mc: ModelConfig, devices: list[str], cache_dir: Path, seconds: float = 5.0,
            log: Callable[[str], None] = print) -> list[Measurement]:
    """Measure ``mc`` on each of ``devices`` (kinds or ids) and store the results."""
    spec = build_spec(mc)
    classes = classes_for(spec)
    store = ProfileStore(Path(cache_dir) / "profiles.sqlite")
    results = []
    for wanted in devices:
        try:
            choice = choices(spec, mc.model_copy(update={"device": wanted}), classes,
                             cache_dir)[0]
        except Exception as exc:
            log(f"{wanted}: skipped ({exc})")
            continue
        cls = next(c for c in classes if choice.placement.backend in c.backends)
        workload = next((fn for base, fn in WORKLOADS.items() if issubclass(cls, base)), None)
        if workload is None:
            log(f"{choice.device_id}: no workload for {cls.__name__}")
            continue
        before = _rss()
        skill = cls(spec)
        try:
            skill.load(choice.placement)
            skill.worker_init()
            throughput, latency, unit = workload(skill, seconds)
        except Exception as exc:
            log(f"{choice.device_id}: failed ({type(exc).__name__}: {exc})")
            continue
        finally:
            skill.unload()
        m = Measurement(model=profile_key(spec), device=choice.device_id,
                        backend=choice.placement.backend, throughput=throughput, unit=unit,
                        latency_ms=latency, peak_bytes=max(0, _rss() - before),
                        measured_at=time.time())
        store.record(m)
        results.append(m)
        log(f"{m.device:<14} {m.backend:<12} {m.throughput:10.1f} {m.unit:<9} "
            f"{m.latency_ms:8.2f} ms  +{(m.peak_bytes or 0) / 2**20:.0f} MiB")
    return results
