"""The pipe between the server process and a model's child process: what the child is told
to load, and how events travel (plain tuples, see ``runtime/process/proxy.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hfserve.backends.placement import Placement
from hfserve.runtime.generation.sequence import Delta
from hfserve.skills.base import Skill
from hfserve.types import ModelSpec, TokenChoice


@dataclass
class ChildSpec:
    """What the child needs to build the real skill and its worker."""

    name: str
    skill_class: type[Skill]
    spec: ModelSpec
    placement: Placement
    max_concurrent: int = 8
    max_queue: int = 64


# --- events on the pipe ------------------------------------------------------------------

def to_wire(event: Any) -> Any:
    """A delta as a plain tuple, its tokens as bare ids unless they carry logprobs: pickling
    dataclasses costs about eight times as much, and a step sends one delta per stream."""
    if type(event) is not Delta:
        return event
    tokens: list[Any] = event.tokens
    # A delta's tokens are one sequence's: all carry logprobs, or none does.
    if not tokens or tokens[0].logprob is None and tokens[0].top is None \
            and tokens[0].text is None:
        tokens = [t.token_id for t in tokens]
    return (event.index, event.text, tokens, event.finish_reason)


def from_wire(event: Any) -> Any:
    if type(event) is not tuple:
        return event
    index, text, tokens, finish_reason = event
    if tokens and type(tokens[0]) is int:
        tokens = [TokenChoice(token_id=t) for t in tokens]
    return Delta(index, text, tokens, finish_reason)


# --- child side --------------------------------------------------------------------------

