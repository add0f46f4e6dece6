"""One generated sequence: turns sampled tokens into text deltas, applies stop strings, stop
tokens and max_tokens, and holds back text that may still become a stop string or an
incomplete character. Pure Python; the scheduler feeds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hfserve.runtime.events import Delta, coalesce, joined  # noqa: F401 - re-exported
from hfserve.types import SamplingParams, TokenChoice


@dataclass(eq=False)          # identity: a sequence is itself, and hashable
class Sequence:
    index: int
    prompt_len: int
    params: SamplingParams
    decode: Callable[[list[int]], str]
    eos_token_ids: frozenset[int]
    state: Any = None
    generator: Any = None
    token_ids: list[int] = field(default_factory=list)
    emitted: int = 0                     # characters of text already sent
    pending: list[TokenChoice] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_ids: list[int] = field(default_factory=list, repr=False)
    generated: int = 0                   # sampled tokens, stop tokens included
    last_token: int = -1
    text: str = ""                       # complete characters decoded so far
    # Incremental detokenization: only the tokens from ``prefix_offset`` on are decoded
    # each step (the ones before ``read_offset`` are already in ``text``), so a step costs
    # the same at token 10 and token 10,000. Decoding from a few tokens earlier keeps
    # tokenizers that merge spaces or bytes across token borders right.
    prefix_offset: int = 0
    read_offset: int = 0
    # The skill's incremental decoder (``TextGenerator.text_stream``), when it has one: then
    # each token is decoded once, as it is appended, and the offsets above count the tokens
    # fed to it (``read_offset``) and those whose text is complete (``prefix_offset``).
    stream: Any = field(default=None, repr=False)
    # False: only tokens and the ends they decide (stop tokens, max_tokens) are kept here,
    # and deltas carry the tokens without text (``Delta.text`` None) for the server
    # process to decode (``runtime/generation/detokenizer.py``). Only without stop strings, which
    # need the text where the sequence is ended.
    detokenize: bool = True
    # Its place in the grammar of a constrained output (the skill's; dropped at the end).
    grammar: Any = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def penalty_history(self) -> list[int]:
        """Tokens that presence/frequency penalties count (prompt and output, as OpenAI)."""
        if not (self.params.presence_penalty or self.params.frequency_penalty):
            return []
        return [*self.prompt_ids, *self.token_ids]

    def ends_with(self, token: int) -> bool:
        """Whether appending ``token`` surely ends the sequence (a stop token, or the last
        token ``max_tokens`` allows); stop strings are only known once decoded."""
        return (token in self.eos_token_ids and not self.params.ignore_eos) \
            or token in self.params.stop_token_ids \
            or len(self.token_ids) + 1 >= self.params.max_tokens

    def append(self, choice: TokenChoice) -> Delta | None:
        """Add one sampled token; return the text that can be sent now (or None)."""
        return self.extend([choice])

    def extend(self, choices: list[TokenChoice]) -> Delta | None:
        """Add sampled tokens (several steps' at once); return the text that can be sent
        now (or None). Tokens after one that ends the sequence are not added."""
        text = ""
        for choice in choices:
            token = choice.token_id
            self.generated += 1
            self.last_token = token
            if (token in self.eos_token_ids and not self.params.ignore_eos) \
                    or token in self.params.stop_token_ids:
                self.finish_reason = "stop"
                return self._flush(self._current(final=True))
            self.token_ids.append(token)
            self.pending.append(choice)
            if self.params.stop:        # a stop string ends the text where it starts
                text = self._text(final=False)
                stop_at = self._find_stop(text)
                if stop_at is not None:
                    self.finish_reason = "stop"
                    return self._flush(text[:stop_at])
            if len(self.token_ids) >= self.params.max_tokens:
                break
        if not self.params.stop:
            text = self._current(final=False)
        if len(self.token_ids) >= self.params.max_tokens:
            self.finish_reason = "length"
            return self._flush(text)
        if not self.detokenize:
            return self._flush(text) if self.pending else None
        safe = len(text) - self._held_back(text)
        if safe <= self.emitted:
            return None
        return self._flush(text[:safe])

    def finish(self, reason: str) -> Delta:
        """End early (cancel, error, context full) with whatever text is complete."""
        self.finish_reason = reason
        return self._flush(self._current(final=True))

    def _current(self, final: bool) -> str:
        return self._text(final) if self.detokenize else ""

    def _text(self, final: bool) -> str:
        """The decoded text so far. Until ``final``, a trailing incomplete character stays
        out and is decoded again with the next token."""
        if self.stream is not None:
            return self._streamed_text(final)
        ids = self.token_ids
        done = self.decode(ids[self.prefix_offset:self.read_offset])
        window = self.decode(ids[self.prefix_offset:])
        new = window[len(done):]
        if not new:
            return self.text
        if new.endswith("\ufffd") and not final:
            return self.text + new
        self.text += new
        self.prefix_offset, self.read_offset = self.read_offset, len(ids)
        return self.text

    def _streamed_text(self, final: bool) -> str:
        """``_text`` through the skill's incremental decoder, which returns None while the
        tokens fed to it end inside a character. At the end such a character is decoded
        from the whole sequence, as the windowed decoding above would (a replacement
        character)."""
        ids = self.token_ids
        for token in ids[self.read_offset:]:
            piece = self.stream.step(token)
            self.read_offset += 1
            if piece is not None:
                self.text += piece
                self.prefix_offset = self.read_offset
        if final and self.prefix_offset < len(ids):
            whole = self.decode(ids)
            if whole.startswith(self.text):
                self.text = whole
            self.prefix_offset = len(ids)
        return self.text

    def _flush(self, text: str) -> Delta:
        delta = Delta(index=self.index, text=text[self.emitted:] if self.detokenize else None,
                      tokens=self.pending, finish_reason=self.finish_reason)
        self.emitted = max(self.emitted, len(text))
        self.pending = []
        return delta

    def _find_stop(self, text: str) -> int | None:
        """Where the first stop string starts in ``text``, searched from where the text not
        yet sent could hold one (this runs for every token of a sequence with stop
        strings)."""
        found = None
        for stop in self.params.stop:
            at = text.find(stop, max(0, self.emitted - len(stop)))
            if at >= 0 and (found is None or at < found):
                found = at
        return found

    def _held_back(self, text: str) -> int:
        """Characters at the end that must wait: a partial UTF-8 character, or a suffix
        that is the beginning of a stop string. Such a suffix starts with the stop's first
        character, so only those places are tried (each token of a sequence with stop
        strings asks)."""
        if text.endswith("\ufffd"):
            return len(text) - len(text.rstrip("\ufffd"))
        held = 0
        for stop in self.params.stop:
            tail = len(stop) - 1
            at = text.find(stop[0], max(0, len(text) - tail)) if tail > held else -1
            while at >= 0:
                if stop.startswith(text[at:]):
                    held = max(held, len(text) - at)
                    break
                at = text.find(stop[0], at + 1)
        return held
