"""The runtime worker that serves a loaded skill: a batcher for encoder skills, our
scheduler for generative ones, a pipeline worker for engines with their own loop, or a
model process of its own."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hfserve.errors import ModelUnavailable
from hfserve.runtime.batching.batcher import Batcher
from hfserve.runtime.generation.pipeline_worker import PipelineWorker
from hfserve.runtime.generation.scheduler import Scheduler
from hfserve.runtime.lifecycle.entry import ModelEntry
from hfserve.runtime.process.proxy import ProcessGenerator
from hfserve.skills.base import BatchSkill, GenerativeSkill, PipelineSkill, Skill


def new_skill(cls: type[Skill], entry: ModelEntry, device_id: str) -> Skill:
    """The skill, or its stand-in in a model process. By default generation gets a
    process of its own on accelerators, where the loop is Python launching kernels
    and the cores are free; on the CPU the model's threads need the cores, and on two
    of them a second process measured slower (docs/benchmarks.md)."""
    mc = entry.config
    generative = issubclass(cls, GenerativeSkill | PipelineSkill)
    on_cpu = device_id.lower().endswith("cpu")
    default = cls.own_process and not on_cpu
    if generative and (default if mc.own_process is None else mc.own_process):
        return ProcessGenerator(entry.spec, cls, max_concurrent=mc.max_concurrent,
                                max_queue=mc.max_queue)
    return cls(entry.spec)



def start_worker(entry: ModelEntry, out_of_memory: Callable[[BaseException], None],
                 exited: Callable[[str], None]) -> None:
    """The model's batcher or scheduler, on ``entry``. ``out_of_memory`` and ``exited`` may
    be called from any thread."""
    mc, skill = entry.config, entry.skill
    if isinstance(skill, ProcessGenerator):
        entry.scheduler = skill.worker(entry.name, on_out_of_memory=out_of_memory,
                                       on_exit=exited)
        return
    workers = {GenerativeSkill: Scheduler, PipelineSkill: PipelineWorker}
    kind = next((w for base, w in workers.items() if isinstance(skill, base)), None)
    if kind is not None:
        entry.scheduler = kind(entry.name, skill, max_concurrent=mc.max_concurrent,
                               max_queue=mc.max_queue, on_out_of_memory=out_of_memory,
                               executor=entry.executor)
    elif isinstance(skill, BatchSkill):
        if skill.workers > 1:   # batches from several threads at once (see skill.workers)
            entry.executor.shutdown(wait=False)
            entry.executor = ThreadPoolExecutor(skill.workers,
                                                thread_name_prefix=f"model-{entry.name}")
        entry.batcher = Batcher(entry.name, skill.run_batch, workers=skill.workers,
                                max_batch_size=mc.max_batch_size,
                                max_batch_tokens=mc.max_batch_tokens,
                                max_wait=mc.max_wait_ms / 1000, max_queue=mc.max_queue,
                                executor=entry.executor,
                                is_out_of_memory=skill.is_out_of_memory,
                                on_out_of_memory=out_of_memory)
        entry.batcher.start()
    else:
        raise ModelUnavailable(f"skill {type(skill).__name__} has no runtime worker")
