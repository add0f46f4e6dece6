"""Generation through an engine that owns its own continuous-batching loop (PipelineSkill,
e.g. openvino-genai). The worker admits requests (one engine request per choice when n > 1),
calls ``step``, reads new tokens and streams them through the same Sequence logic as our own
scheduler, so stop strings, limits, cancellation and events behave identically.

Where the engine reports only the chosen token's log-probability, the skill scores whole
sequences (``PipelineSkill.score``): a prompt once before the engine gets it (prompt logprobs),
and a sequence's prompt and output once it has ended (the top alternatives of each generated
token). The deltas of a sequence that asked for alternatives are held until then, so its
stream arrives whole at its end."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hfserve import metrics
from hfserve.runtime.events import Delta
from hfserve.runtime.generation.sequence import Sequence
from hfserve.runtime.generation.worker import Active, GenerationWorker, PromptInfo
from hfserve.skills.base import PipelineSkill
from hfserve.types import TokenChoice


class PipelineWorker(GenerationWorker):
    skill: PipelineSkill
    # openvino-genai's step holds the interpreter lock for most of its time: a thread
    # spinning beside it ran only in the last quarter or so of each step (2026.4, CPU).
    yield_to_loop = True

    def __init__(self, *args, **kwargs) -> None:
        self._keys = itertools.count(1)
        # Deltas of sequences waiting for their scoring pass: request -> choice index -> deltas.
        self._held: dict[Active, dict[int, list[Delta]]] = {}
        super().__init__(*args, **kwargs)

    def _start(self, active: Active) -> None:
        req = active.request
        metrics.TOKENS.labels(self.name, "prompt").inc(len(req.prompt_ids))
        prompt = None
        if req.params.prompt_logprobs is not None:
            ids = req.prompt_ids
            prompt = [TokenChoice(token_id=ids[0]),
                      *self.skill.score(ids, 1, req.params.prompt_logprobs)]
            for choice in prompt:
                self._name(choice)
        active.stream.push([PromptInfo(len(req.prompt_ids), prompt)])
        self._running.append(active)
        if req.params.max_tokens == 0:
            self._finish_request(active)
            return
        seed = req.params.seed
        for i in range(req.n):
            params = req.params if seed is None else replace(req.params, seed=seed + i)
            handle = self.skill.add(next(self._keys), req.prompt_ids, params)
            self._new_sequence(active, i, state=handle)

    def _step(self) -> None:
        if self.skill.has_work():
            self.skill.step()
        metrics.BATCH_SIZE.labels(self.name).observe(self.running)
        emitted = 0
        for active in list(self._running):
            choices: list[tuple[Sequence, TokenChoice]] = []
            for seq in active.seqs:
                if seq.finished or seq.state is None:
                    continue
                out = self.skill.read(seq.state)
                logprobs = out.logprobs or [None] * len(out.token_ids)
                choices += [(seq, TokenChoice(token_id=t, logprob=lp))
                            for t, lp in zip(out.token_ids, logprobs, strict=False)]
                if out.finished and not out.token_ids and not seq.finished:
                    # The engine ended the sequence without a token we saw (its own limit).
                    choices.append((seq, TokenChoice(token_id=next(iter(
                        self.skill.eos_token_ids)))))
            if choices:
                self._emit(active, choices)
                emitted += len(choices)
        self._count_completion(emitted)

    def _push(self, active: Active, events: list[Delta]) -> bool:
        """Deltas of sequences that want top alternatives wait for the sequence's end; then
        one scoring pass over its prompt and output fills them in, and they go out."""
        if not active.request.params.logprobs:
            return super()._push(active, events)
        held = self._held.setdefault(active, {})
        for delta in events:
            held.setdefault(delta.index, []).append(delta)
        ready: list[Delta] = []
        for seq in active.seqs:
            if seq.finished and seq.index in held:
                deltas = held.pop(seq.index)
                try:
                    self._fill_alternatives(active, deltas)
                except Exception as exc:  # this request fails, the others run on
                    self._fail([active], exc)
                    return False
                ready += deltas
        active.stream.push(ready)
        return True

    def _fill_alternatives(self, active: Active, deltas: list[Delta]) -> None:
        """The top alternatives of every token of a finished sequence's ``deltas`` (all of
        its output, in order) from one scoring pass. The chosen token's log-probability is
        taken from that pass too, so that it equals its own entry among the alternatives:
        openvino-genai's paged-attention forward put SmolLM2's 5-8e-4 away from the same
        token's in a plain forward of the same IR (which is within 6e-5 of torch's)."""
        tokens = [choice for delta in deltas for choice in delta.tokens]
        if not tokens:
            return
        req = active.request
        scored = self.skill.score([*req.prompt_ids, *(t.token_id for t in tokens)],
                                  len(req.prompt_ids), req.params.logprobs)
        for choice, own in zip(tokens, scored, strict=True):
            choice.logprob, choice.top = own.logprob, own.top
            self._name(choice)

    def _retire(self, active: Active, error: BaseException | None) -> None:
        self._held.pop(active, None)
        super()._retire(active, error)

    def _settle(self) -> None:
        """Requests we ended (a stop string, a cancel) are only dropped by the engine at its
        next step; when they were the last ones, step it until it has let them go, or their
        KV blocks would stay taken until the next request comes."""
        for _ in range(4):
            if not self.skill.has_work():
                return
            self.skill.step()

    def _on_sequence_end(self, seq: Sequence) -> None:
        if seq.state is not None:
            self.skill.cancel(seq.state)
            seq.state = None
