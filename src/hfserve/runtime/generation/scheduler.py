"""Our own generation loop, for skills that expose model stages (prefill / decode): between
decode steps newcomers are admitted up to ``max_concurrent`` sequences and prefilled; finished
or cancelled sequences leave at once and free their KV cache.

It exists because eager torch models have no serving loop of their own; engines that bring
one (openvino-genai) run under ``PipelineWorker`` instead."""

from __future__ import annotations

import time
from collections.abc import Callable

from hfserve import metrics
from hfserve.runtime import admission
from hfserve.runtime.generation.sequence import Sequence
from hfserve.runtime.generation.worker import (  # noqa: F401 - re-exported
    Active,
    Finished,
    GenerationRequest,
    GenerationWorker,
    PromptInfo,
)
from hfserve.skills.base import GenerativeSkill
from hfserve.types import Pick, TokenChoice

# Newcomers are admitted at once when the waiting sequences reach this share of the running
# ones, without waiting out ``prefill_wait_steps``.
GATHERED_SHARE = 1 / 8
# The fewest sequences for which ``decode_steps`` steps are queued back to back. Below it
# the device's step, not the host's work, bounds the rate, and one step at a time keeps
# each stream's tokens coming evenly.
MULTI_STEP_ROWS = 64


class Scheduler(GenerationWorker):
    skill: GenerativeSkill
    _steps = 0                      # decode steps run
    _held_since: int | None = None  # the step at which newcomers were first held back
    # Steps started but not yet turned into text, in order: each one's rows and the call
    # that waits for their choices (see _step_overlapped).
    _inflight: list[tuple[list[tuple[Active, Sequence]], Callable]] | None = None

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
        ``waiting_served_ratio`` of the running. Never while nothing runs, or for a
        high-priority request. Waiting that fill the free slots wait too: under a full
        closed loop they always do, and each prefill of two costs as much as one of thirty."""
        wait = self.skill.prefill_wait_steps
        if not (wait and self._running and self._waiting) or self._waiting[0][0] == 0:
            return False
        enough = max(1.0, self.running * GATHERED_SHARE)
        if len(self._waiting) >= enough or sum(
                entry[2].request.n for entry in self._waiting) >= enough:
            return False
        if self._held_since is None:
            self._held_since = self._steps
        return self._steps - self._held_since < wait

    def _prefill_room(self) -> int:
        """What the prompt being prefilled in parts leaves of the budget: its next part goes
        first, as vLLM schedules prefills under way before new ones, so that a round
        prefills at most the budget (newcomers and a part together took up to twice it)."""
        budget = self.prefill_budget
        if not self._parts:
            return budget
        active = self._parts[0]
        return budget - min(budget, len(active.request.prompt_ids) - active.prefilled)

    def _start_all(self, newcomers: list[Active]) -> None:
        """Prefill newcomers in groups of the skill's size; a prompt longer than the prefill
        budget goes in parts, one between two decode steps (``_continue_parts``). A group
        whose prefill fails is retried one request at a time, so one bad prompt fails only
        its own request."""
        whole = []
        for active in newcomers:
            (self._parts if self._in_parts(active) else whole).append(active)
        newcomers = whole
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

    def _in_parts(self, active: Active) -> bool:
        """Whether ``active``'s prompt is prefilled in parts: it is longer than the budget,
        the skill can continue a prefill, and no prompt logprobs are asked for (each part
        would need the logits of every prompt position)."""
        req = active.request
        # (A prompt with media goes whole: its image tokens take their features from one
        # forward of the images.)
        return self.skill.chunked_prefill and req.params.prompt_logprobs is None \
            and req.media is None and len(req.prompt_ids) > self.skill.prefill_budget > 0

    def _continue_parts(self) -> None:
        """Feed the next part (``prefill_budget`` tokens) of the oldest prompt being
        prefilled in parts; its last part starts its sequences, as a prefill does. Chunked
        prefill, as vLLM and TGI do it, so that the running sequences get a decode step
        between two parts instead of waiting for the whole prompt."""
        active = self._parts[0]
        if admission.past(active.request.deadline, time.monotonic()):
            # Its later parts would be work for nobody: the client has its 504.
            self._fail([active], admission.expired(self.name, "during prefill"))
            return
        ids = active.request.prompt_ids[active.prefilled:]
        budget = self.skill.prefill_budget
        try:
            if len(ids) > budget:
                adapter = active.request.adapter
                active.partial = self.skill.prefill_part(active.partial, ids[:budget]) \
                    if adapter is None else self.skill.prefill_part(
                        active.partial, ids[:budget], adapter=adapter)
                active.prefilled += budget
                return
            prefilled = self.skill.finish_prefill(active.partial, ids)
        except Exception as exc:
            self._fail([active], exc)
            return
        self._parts.remove(active)
        active.partial = None
        self._guard([active], self._begin, [active], prefilled)

    def _start(self, active: Active) -> None:
        self._begin([active], self._prefill([active]))

    def _prefill(self, group: list[Active]) -> tuple:
        prompts = [a.request.prompt_ids for a in group]
        logprobs = [a.request.params.prompt_logprobs for a in group]
        # Only skills that serve adapters get requests with one (the engine refuses the
        # rest), and only vision-language skills requests with media: only those take them.
        extra: dict = {}
        adapters = [a.request.adapter for a in group]
        if any(adapters):
            extra["adapters"] = adapters
        media = [a.request.media for a in group]
        if any(m is not None for m in media):
            extra["media"] = media
        if extra:
            return self.skill.prefill(prompts, logprobs, **extra)
        return self.skill.prefill(prompts, logprobs)

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
            constraint = req.params.constraint
            for i, st in enumerate(self.skill.fork(state, req.n)):
                seq = self._new_sequence(active, i, st, self.skill.new_generator(
                    None if seed is None else seed + i))
                if constraint is not None:
                    seq.grammar = self.skill.guide(constraint)
                picks.append((active, seq, Pick(row, seq.params, seq.generator,
                                                seq.penalty_history, seq.grammar)))
        self._sample_and_emit(logits, picks)

    def _step(self) -> None:
        if self._inflight is not None or self._overlap():
            self._step_overlapped()
            return
        seqs = [(a, s) for a in self._running for s in a.seqs if not s.finished]
        if seqs:
            self._emit_choices(seqs, self._launch(seqs, [s.last_token for _, s in seqs])())

    def _launch(self, rows: list[tuple[Active, Sequence]], tokens: list[int],
                fed: tuple[Callable, list[int]] | None = None,
                picks: list[Pick] | None = None) -> Callable:
        """Start one decode step of ``rows`` fed ``tokens`` (the first ones fed from the
        step before, on the device, with ``fed``; ``picks``: the rows' picks, when already
        made); the returned call waits for their choices."""
        metrics.BATCH_SIZE.labels(self.name).observe(len(rows))
        self._steps += 1
        states = [s.state for _, s in rows]
        logits = self.skill.decode(states, tokens) if fed is None else \
            self.skill.decode(states, tokens, fed)
        return self.skill.sample_later(logits, picks if picks is not None else
                                       self._picks(rows))

    @staticmethod
    def _picks(rows: list[tuple[Active, Sequence]]) -> list[Pick]:
        return [Pick(i, seq.params, seq.generator, seq.penalty_history, seq.grammar)
                for i, (_, seq) in enumerate(rows)]

    def _overlap(self) -> bool:
        """Overlap where the skill's device runs asynchronously, unless a running sequence
        has penalties or a grammar: they need the previous token, not yet known when the
        next step starts."""
        return self.skill.overlap_steps and not any(
            s.params.presence_penalty or s.params.frequency_penalty
            or s.params.constraint is not None
            for a in self._running for s in a.seqs)

    def _step_overlapped(self) -> None:
        """Start step t with the tokens of step t-1, then turn t-1's tokens into text while
        the device computes t: the host's per-token work (detokenization, events) hides
        behind the device's, as in vLLM's asynchronous scheduling. A sequence that step
        t-1 ends (by a stop string, or by cancellation) has run step t for nothing, and
        its result is dropped.

        Where the skill feeds tokens on the device, step t is queued before t-1's tokens
        reach the host (the device goes from one step to the next without waiting for the
        host), so only ends known in advance (``max_tokens``, the context) are left out of
        it; and with many sequences running, ``decode_steps`` steps are queued back to back
        before their tokens are turned into text, together (vLLM's multi-step scheduling):
        the host's work per step (launching, a message per stream on the pipe, a chunk per
        stream over HTTP) is then spread over that many tokens. Otherwise t starts once
        t-1's tokens are on the host, and ends known from the token alone are left out too.
        """
        previous, self._inflight = self._inflight, None
        live = set(self._running)
        if self.skill.feeds_tokens:
            group = self._launch_fed(previous or [], live)
        else:
            group = self._launch_after(previous[-1] if previous else None, live)
        self._inflight = group or None
        if previous:
            self._emit_steps(previous, live)
        if self._inflight is None and any(
                not s.finished for a in self._running for s in a.seqs):
            self._step()                   # overlap just ended: a plain step

    def _launch_after(self, previous: tuple | None, live: set[Active]) -> list[tuple]:
        """Step t once step t-1's choices are on the host (which ``previous[1]`` keeps)."""
        rows: list[tuple[Active, Sequence]] = []
        tokens: list[int] = []
        carried: set[Sequence] = set()
        if previous is not None:
            last, pending = previous
            choices = pending()
            for (active, seq), choice in zip(last, choices, strict=True):
                carried.add(seq)
                if active in live and not seq.finished and not seq.ends_with(
                        choice.token_id) and self._room(seq) > 1:
                    rows.append((active, seq))
                    tokens.append(choice.token_id)
        self._add_newcomers(rows, tokens, carried)
        if not (rows and self._overlap()):
            return []
        return [(rows, self._launch(rows, tokens))]

    def _launch_fed(self, previous: list[tuple], live: set[Active]) -> list[tuple]:
        """Steps queued behind ``previous`` (still computing), each fed the tokens of the
        one before on the device: one, or ``decode_steps`` for a batch of at least
        ``MULTI_STEP_ROWS``."""
        ahead: dict[Sequence, int] = {}          # steps queued whose tokens are not in yet
        for step_rows, _ in previous:
            for _, seq in step_rows:
                ahead[seq] = ahead.get(seq, 0) + 1
        last, pending = previous[-1] if previous else ([], None)
        rows: list[tuple[Active, Sequence]] = []
        fed: list[int] = []                      # their places in the step before
        left: list[int] = []                     # steps each may still take
        for i, (active, seq) in enumerate(last):
            if active in live and not seq.finished:
                room = self._room(seq) - ahead[seq]
                if room > 0:
                    rows.append((active, seq))
                    fed.append(i)
                    left.append(room)
        tokens = [0] * len(rows)
        self._add_newcomers(rows, tokens, set(ahead))
        left += [self._room(seq) for _, seq in rows[len(left):]]
        group: list[tuple] = []
        steps = self.skill.decode_steps if len(rows) >= MULTI_STEP_ROWS else 1
        if not self._overlap():
            return group
        picks = None
        while rows and len(group) < steps:
            picks = picks or self._picks(rows)
            pending = self._launch(rows, tokens, (pending, fed) if fed else None, picks)
            group.append((rows, pending))
            done = len(group)
            if min(left) > done:                 # every row goes on
                fed = list(range(len(rows)))
            else:                                # some reach max_tokens or the context
                fed = [i for i, n in enumerate(left) if n > done]
                rows, left, picks = [rows[i] for i in fed], [left[i] for i in fed], None
            tokens = [0] * len(rows)
        return group

    def _room(self, seq: Sequence) -> int:
        """How many more tokens ``max_tokens`` and the context allow ``seq``."""
        done = len(seq.token_ids)
        return min(seq.params.max_tokens - done,
                   self.skill.max_context - seq.prompt_len - done)

    def _add_newcomers(self, rows: list, tokens: list[int], carried: set[Sequence]) -> None:
        """Sequences prefilled since the last step (their first token emitted)."""
        for active in self._running:
            for seq in active.seqs:
                if not seq.finished and seq not in carried:
                    rows.append((active, seq))
                    tokens.append(seq.last_token)

    def _emit_steps(self, steps: list[tuple], live: set[Active]) -> None:
        """The choices of queued steps, in order, turned into text: each request gets its
        sequences' tokens of all these steps at once (one event per sequence, however many
        steps there were)."""
        rows: list[tuple[Active, Sequence]] = []
        choices: list[TokenChoice] = []
        for step_rows, pending in steps:
            rows += step_rows
            choices += pending()
        self._emit_choices(rows, choices, live)

    def _sample_and_emit(self, logits: object,
                         picks: list[tuple[Active, Sequence, Pick]]) -> None:
        if picks:
            choices = self.skill.sample(logits, [pick for _, _, pick in picks])
            self._emit_choices([(a, s) for a, s, _ in picks], choices)

    def _emit_choices(self, rows: list[tuple[Active, Sequence]], choices: list[TokenChoice],
                      live: set[Active] | None = None) -> None:
        """Hand each request its sequences' new tokens (those of requests still in
        ``live``, when given)."""
        by_request: dict[Active, list] = {}
        for (active, seq), choice in zip(rows, choices, strict=True):
            # (A sequence ended by the step before has run this step for nothing.)
            if (live is None or active in live) and not seq.finished:
                pairs = by_request.get(active)
                if pairs is None:
                    pairs = by_request[active] = []
                pairs.append((seq, choice))
        for active, pairs in by_request.items():
            self._emit(active, pairs)
        self._count_completion(len(choices) if live is None else sum(
            len(pairs) for pairs in by_request.values()))

    def _on_sequence_end(self, seq: Sequence) -> None:
        seq.grammar = None              # the grammar engine's state goes with the sequence
        if seq.state is not None:
            self.skill.release(seq.state)
            seq.state = None
