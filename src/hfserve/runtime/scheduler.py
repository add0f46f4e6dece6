"""Our own generation loop, for skills that expose model stages (prefill / decode): between
decode steps newcomers are admitted up to ``max_concurrent`` sequences and prefilled; finished
or cancelled sequences leave at once and free their KV cache.

It exists because eager torch models have no serving loop of their own; engines that bring
one (openvino-genai) run under ``PipelineWorker`` instead."""

from __future__ import annotations

from hfserve import metrics
from hfserve.runtime.generation_worker import (  # noqa: F401 - re-exported
    Active,
    Finished,
    GenerationRequest,
    GenerationWorker,
    PromptInfo,
)
from hfserve.runtime.sequence import Sequence
from hfserve.skills.base import GenerativeSkill


class Scheduler(GenerationWorker):
    skill: GenerativeSkill
    prefill_budget = 512

    def _start(self, active: Active) -> None:
        req = active.request
        state, logits, prompt = self.skill.prefill(req.prompt_ids, req.params.prompt_logprobs)
        for choice in prompt or ():
            self._name(choice)
        metrics.TOKENS.labels(self.name, "prompt").inc(len(req.prompt_ids))
        active.stream.push([PromptInfo(len(req.prompt_ids), prompt)])
        self._running.append(active)
        if req.params.max_tokens == 0:
            self.skill.release(state)
            self._finish_request(active)
            return
        seed = req.params.seed
        for i, st in enumerate(self.skill.fork(state, req.n)):
            self._new_sequence(active, i, st,
                               self.skill.new_generator(None if seed is None else seed + i))
        self._advance(active, [(seq, logits) for seq in active.seqs])

    def _step(self) -> None:
        seqs = [s for a in self._running for s in a.seqs if not s.finished]
        if not seqs:
            return
        metrics.BATCH_SIZE.labels(self.name).observe(len(seqs))
        logits = self.skill.decode([s.state for s in seqs], [s.last_token for s in seqs])
        pairs = dict(zip(map(id, seqs), zip(seqs, logits, strict=True), strict=True))
        for active in list(self._running):
            mine = [pairs[id(s)] for s in active.seqs if id(s) in pairs]
            if mine:
                self._advance(active, mine)

    def _advance(self, active: Active, pairs: list[tuple[Sequence, object]]) -> None:
        self._emit(active, [(seq, self.skill.sample(logits, seq.params, seq.generator,
                                                    seq.penalty_history))
                            for seq, logits in pairs])

    def _on_sequence_end(self, seq: Sequence) -> None:
        if seq.state is not None:
            self.skill.release(seq.state)
            seq.state = None
