"""Constrained decoding with llguidance: a constraint (JSON schema or regex, with fixed
text around it) becomes a grammar, each constrained sequence gets a matcher, and each step
the matchers' token masks are applied to their rows of the logits.

llguidance rather than xgrammar or outlines-core because it fits a sampler that masks some
rows of a continuous batch: it computes the mask of the next token on the fly (tens of
microseconds to a few milliseconds, no per-schema precompilation over the vocabulary, so
a new schema costs a request nothing up front), writes it straight into a row of an int32
bitmask, checks a grammar without a tokenizer (the server process refuses a bad schema with
a 400 before anything is queued), and installs as one small wheel without triton. A parsed
grammar is still kept per tokenizer and digest of its constraint (``Grammars``): a new
sequence gets a copy of its matcher, not a new parse."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from hfserve.errors import InvalidRequest
from hfserve.types import Constraint

# JSON as compact as json.dumps(separators=(",", ":")) writes it, with no free whitespace:
# a small model allowed whitespace may emit newlines until max_tokens.
JSON_OPTIONS = {"whitespace_flexible": False}
CACHED_GRAMMARS = 256


def _rule(constraint: Constraint) -> str:
    """The lark rule that the constrained text between prefix and suffix matches."""
    if constraint.kind == "json_schema":
        try:
            schema = json.loads(constraint.value)
        except ValueError as exc:
            raise InvalidRequest(f"the JSON schema is not JSON: {exc}",
                                 param="response_format") from None
        if schema is True:
            schema = {}
        if not isinstance(schema, dict):
            raise InvalidRequest("a JSON schema must be an object", param="response_format")
        options = {**schema.get("x-guidance", {}), **JSON_OPTIONS}
        return f"%json {json.dumps({**schema, 'x-guidance': options})}"
    if constraint.kind == "regex":
        return "/" + constraint.value.replace("/", "\\/") + "/"
    raise InvalidRequest(f"unknown output constraint {constraint.kind!r}",
                         param="response_format")


@lru_cache(maxsize=CACHED_GRAMMARS)
def grammar_of(constraint: Constraint) -> str:
    """The llguidance grammar of ``constraint`` (a lark grammar: its fixed text, then the
    JSON schema or regex); ``InvalidRequest`` names what is wrong with it."""
    import llguidance as llg

    parts = [json.dumps(text) for text in (constraint.prefix,) if text]
    parts.append("body")
    parts += [json.dumps(text) for text in (constraint.suffix,) if text]
    # lark string literals take JSON escapes
    grammar = llg.LLMatcher.grammar_from_lark(
        f"start: {' '.join(parts)}\nbody: {_rule(constraint)}\n")
    error = llg.LLMatcher.validate_grammar(grammar)
    if error:
        raise InvalidRequest(f"the output constraint cannot be compiled: {_reason(error)}",
                             param="response_format")
    return grammar


def _reason(error: str) -> str:
    """The engine's message without its position and its listing of the grammar."""
    text = re.sub(r"^at \d+\(\d+\): ", "", error.strip())
    return " ".join(re.split(r"\n\s*\d+ \|", text)[0].split())[:300]


def check(constraint: Constraint | None) -> None:
    """A 400 for a constraint the grammar engine cannot compile (no tokenizer needed)."""
    if constraint is not None:
        grammar_of(constraint)


class Guide:
    """One constrained sequence's place in its grammar."""

    __slots__ = ("matcher", "vocab", "eos")

    def __init__(self, matcher: Any, vocab: int, eos: list[int]) -> None:
        self.matcher, self.vocab, self.eos = matcher, vocab, eos

    def advance(self, token: int) -> None:
        """The sampled token enters the matcher (one it does not allow puts it in an
        error state, where only the end of the sequence is allowed)."""
        self.matcher.consume_token(token)

    @property
    def failed(self) -> bool:
        return self.matcher.is_error()


class Grammars:
    """The grammar engine's view of one tokenizer: its vocabulary (built once, about half
    a second) and the matchers of the constraints seen, by digest (a new sequence starts
    from a copy, which costs microseconds)."""

    def __init__(self, tokenizer: Any, eos_token_ids: frozenset[int]) -> None:
        import llguidance.hf

        self.eos = sorted(eos_token_ids)
        from hfserve.text.codec import byte_level_decoding

        self.tokenizer = llguidance.hf.from_tokenizer(byte_level_decoding(tokenizer),
                                                      n_vocab=len(tokenizer),
                                                      eos_token=self.eos)
        self.vocab = self.tokenizer.vocab_size
        self._matchers: OrderedDict[str, Any] = OrderedDict()

    def guide(self, constraint: Constraint) -> Guide:
        import llguidance as llg

        key = constraint.key
        base = self._matchers.get(key)
        if base is None:
            base = llg.LLMatcher(self.tokenizer, grammar_of(constraint), log_level=0)
            if base.is_error():
                raise InvalidRequest("the output constraint cannot be compiled: "
                                     f"{_reason(base.get_error())}", param="response_format")
            self._matchers[key] = base
            if len(self._matchers) > CACHED_GRAMMARS:
                self._matchers.popitem(last=False)
        else:
            self._matchers.move_to_end(key)
        return Guide(base.deep_copy(), self.vocab, self.eos)


def apply_masks(scores: Any, rows: list[int], guides: list[Guide]) -> None:
    """Set to -inf, in place, every token that the guide of row ``rows[i]`` of ``scores``
    (2-D float, on any device) does not allow; other rows are left as they are. The masks
    are written on the host into one int32 bitmask, moved once and unpacked on the device;
    logits columns past the tokenizer's vocabulary are never allowed. A guide in an error
    state allows only its end-of-sequence tokens."""
    import torch
    from llguidance.torch import fill_next_token_bitmask

    vocab = guides[0].vocab
    bitmask = torch.zeros((len(rows), (vocab + 31) // 32), dtype=torch.int32)
    for i, guide in enumerate(guides):
        if guide.failed:
            for token in guide.eos:
                bit = 1 << (token % 32)
                bitmask[i, token // 32] |= bit - (1 << 32) * (bit >> 31)   # as int32
        else:
            fill_next_token_bitmask(guide.matcher, bitmask, i)
    device = scores.device
    bits = (bitmask.to(device)[:, :, None]
            >> torch.arange(32, dtype=torch.int32, device=device)) & 1
    allowed = bits.reshape(len(rows), -1).bool()
    width = scores.shape[-1]
    if allowed.shape[1] < width:
        allowed = torch.nn.functional.pad(allowed, (0, width - allowed.shape[1]))
    index = torch.tensor(rows, device=device)
    scores[index] = scores[index].masked_fill(~allowed[:, :width], float("-inf"))
