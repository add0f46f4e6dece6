"""Drive a real generation skill, by hand (prefill, decode, release) or through the runtime's
scheduler, greedily, and read back each prompt's tokens; and what transformers ``generate``
gives for one prompt alone. Shared by the CPU and the CUDA tests."""

from __future__ import annotations

import asyncio

from hfserve.runtime.generation.scheduler import GenerationRequest, Scheduler
from hfserve.runtime.generation.sequence import Delta
from hfserve.runtime.generation.stream import EventStream
from hfserve.types import Pick, SamplingParams

GREEDY = SamplingParams(temperature=0)


def alone(skill, prompt: list[int], steps: int) -> list[int]:
    """``steps`` greedy tokens of transformers ``generate`` for ``prompt`` by itself."""
    import torch

    with torch.inference_mode():
        out = skill.model.generate(torch.tensor([prompt], device=skill.model.device),
                                   max_new_tokens=steps, do_sample=False, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def ids_as_text(monkeypatch, skill) -> None:
    """Let a skill without a tokenizer stream its token ids as text, never ending on eos."""
    monkeypatch.setattr(skill, "decode_tokens", lambda ids: " ".join(map(str, ids)),
                        raising=False)
    monkeypatch.setattr(skill, "eos_token_ids", frozenset(), raising=False)


def record_parts(monkeypatch, skill) -> list[int]:
    """The length of every prompt part ``skill`` is fed from now on (``prefill_part``)."""
    parts: list[int] = []
    part = skill.prefill_part
    monkeypatch.setattr(skill, "prefill_part",
                        lambda partial, ids: parts.append(len(ids)) or part(partial, ids))
    return parts


def greedy(skill, logits, rows: int) -> list[int]:
    return [c.token_id for c in skill.sample(logits, [Pick(i, GREEDY, None, [])
                                                      for i in range(rows)])]


def stepped_tokens(skill, prompts: list[list[int]], steps: int,
                   joins: list[tuple[int, list[int]]]) -> list[list[int]]:
    """``steps`` greedy tokens for each prompt, stepping the skill by hand: each
    ``(after, indexes)`` of ``joins`` prefills those prompts together once ``after`` decode
    steps have run (joining the rows already decoding); a row is released as soon as it has
    its tokens."""
    got: dict[int, list[int]] = {}
    live: list[tuple[int, object]] = []
    pending = sorted(joins, key=lambda join: join[0])
    done = 0
    while pending or live:
        while pending and pending[0][0] <= done:
            indexes = pending.pop(0)[1]
            states, logits, _ = skill.prefill([prompts[i] for i in indexes],
                                              [None] * len(indexes))
            for i, state, token in zip(indexes, states, greedy(skill, logits, len(indexes)),
                                       strict=True):
                got[i] = [token]
                live.append((i, state))
        logits = skill.decode([s for _, s in live], [got[i][-1] for i, _ in live])
        for (i, _), token in zip(live, greedy(skill, logits, len(live)), strict=True):
            got[i].append(token)
        for i, state in list(live):
            if len(got[i]) == steps:
                skill.release(state)
                live.remove((i, state))
        done += 1
    return [got[i] for i in range(len(prompts))]


def scheduled_tokens(skill, prompts: list[list[int]], max_tokens: list[int],
                     gap_s: float = 0.005) -> list[list[int]]:
    """Submit ``prompts`` to a scheduler ``gap_s`` apart (later ones join a batch already
    running) and return the tokens each request streamed."""

    async def run() -> list[list[int]]:
        scheduler = Scheduler("scheduled", skill, max_concurrent=8, max_queue=16)
        loop = asyncio.get_running_loop()
        try:
            streams = []
            for i, (prompt, n) in enumerate(zip(prompts, max_tokens, strict=True)):
                stream = EventStream(loop)
                scheduler.submit(GenerationRequest(f"r{i}", prompt, SamplingParams(
                    temperature=0, max_tokens=n)), stream)
                streams.append(stream)
                await asyncio.sleep(gap_s * i)

            async def tokens(stream: EventStream) -> list[int]:
                return [t.token_id async for e in stream if isinstance(e, Delta)
                        for t in e.tokens]

            return await asyncio.wait_for(asyncio.gather(*map(tokens, streams)), 60)
        finally:
            await asyncio.to_thread(scheduler.stop)

    return asyncio.run(run())
