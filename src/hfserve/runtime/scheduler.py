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
from hfserve.types import Pick

# Newcomers are admitted at once when the waiting sequences reach this share of the running
# ones (or fill the free slots), without waiting out ``prefill_wait_steps``.
GATHERED_SHARE = 1 / 8


class Scheduler(GenerationWorker):
    skill: GenerativeSkill
    _steps = 0                      # decode steps run
    _held_since: int | None = None  # the step at which newcomers were first held back

    @property
    def prefill_budget(self) -> int:  # type: ignore[override]
        return self.skill.prefill_budget

    def _admit(self) -> list[Active]:
        if self._hold_newcomers():
            return []
        self._held_since = None
        return super()._admit()

    def _hold_newcomers(self) -> bool:
        """Whether newcomers wait for the next step so that more of them share a prefill,
        as TGI's router waits ``max_waiting_tokens`` steps or until the waiting reach
        ``waiting_served_ratio`` of the running. Never while nothing runs, for a
        high-priority request, or once the waiting would fill the free slots."""
        wait = self.skill.prefill_wait_steps
        if not (wait and self._running and self._waiting) or self._waiting[0][0] == 0:
            return False
        free = self.max_concurrent - self.running
        waiting = sum(entry[2].request.n for entry in self._waiting)
        if free <= 0 or waiting >= min(free, max(1.0, self.running * GATHERED_SHARE)):
            return False
        if self._held_since is None:
            self._held_since = self._steps
        return self._steps - self._held_since < wait

    def _start_all(self, newcomers: list[Active]) -> None:
        """Prefill newcomers in groups of the skill's size. A group whose prefill fails is
        retried one request at a time, so one bad prompt fails only its own request."""
        size = max(1, self.skill.max_prefill_batch)
        for first in range(0, len(newcomers), size):
            group = newcomers[first:first + size]
            try:
                prefilled = self._prefill(group)
            except Exception as exc:
                if len(group) == 1 or self.skill.is_out_of_memory(exc):
                    self._fail(group, exc)
                    continue
                for active in group:
                    self._guard([active], self._start, active)
                continue
            self._guard(group, self._begin, group, prefilled)

    def _start(self, active: Active) -> None:
        self._begin([active], self._prefill([active]))

    def _prefill(self, group: list[Active]) -> tuple:
        return self.skill.prefill([a.request.prompt_ids for a in group],
                                  [a.request.params.prompt_logprobs for a in group])

    def _begin(self, group: list[Active], prefilled: tuple) -> None:
        """Announce each prompt, create its sequences, and sample their first tokens."""
        states, logits, prompts = prefilled
        picks: list[tuple[Active, Sequence, Pick]] = []
        for row, (active, state, prompt) in enumerate(zip(group, states, prompts,
                                                          strict=True)):
            req = active.request
            for choice in prompt or ():
                self._name(choice)
            metrics.TOKENS.labels(self.name, "prompt").inc(len(req.prompt_ids))
            active.stream.push([PromptInfo(len(req.prompt_ids), prompt)])
            self._running.append(active)
            if req.params.max_tokens == 0:
                self.skill.release(state)
                self._finish_request(active)
                continue
            seed = req.params.seed
            for i, st in enumerate(self.skill.fork(state, req.n)):
                seq = self._new_sequence(active, i, st, self.skill.new_generator(
                    None if seed is None else seed + i))
                picks.append((active, seq, Pick(row, seq.params, seq.generator,
                                                seq.penalty_history)))
        self._sample_and_emit(logits, picks)

    def _step(self) -> None:
        seqs = [(a, s) for a in self._running for s in a.seqs if not s.finished]
        if not seqs:
            return
        metrics.BATCH_SIZE.labels(self.name).observe(len(seqs))
        self._steps += 1
        logits = self.skill.decode([s.state for _, s in seqs], [s.last_token for _, s in seqs])
        self._sample_and_emit(logits, [
            (active, seq, Pick(row, seq.params, seq.generator, seq.penalty_history))
            for row, (active, seq) in enumerate(seqs)])

    def _sample_and_emit(self, logits: object,
                         picks: list[tuple[Active, Sequence, Pick]]) -> None:
        if not picks:
            return
        choices = self.skill.sample(logits, [pick for _, _, pick in picks])
        by_request: dict[int, tuple[Active, list]] = {}
        for (active, seq, _), choice in zip(picks, choices, strict=True):
            by_request.setdefault(id(active), (active, []))[1].append((seq, choice))
        for active, pairs in by_request.values():
            self._emit(active, pairs)

    def _on_sequence_end(self, seq: Sequence) -> None:
        if seq.state is not None:
            self.skill.release(seq.state)
            seq.state = None
