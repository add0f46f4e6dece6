"""A torch-free generative skill for the model-process tests: it is imported by the spawned
child, so it lives in a module of its own. Prompts steer it: CRASH ends the process in the
middle of a prefill; a spec config with "fail_load" makes loading fail."""

from __future__ import annotations

import itertools
import os
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.skills.base import GenerativeSkill
from hfserve.types import Pick, Task, TokenChoice

WORDS = ["<eos>", "one", "two", "three", "crash"]
CRASH = 4


class ScriptSkill(GenerativeSkill):
    task: ClassVar[Task] = Task.TEXT_GENERATION
    own_process: ClassVar[bool] = True
    eos_token_ids = frozenset({0})

    @classmethod
    def text_codec(cls):
        """The server side tokenizes with the folder's HF tokenizer, as real skills do."""
        from hfserve.text.codec import HFTextCodec

        return HFTextCodec()

    def load(self, placement: Placement) -> None:
        if self.spec.config.get("fail_load"):
            raise RuntimeError("the weights are corrupt")
        self.placement = placement
        self.max_context = 100

    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        return [1]

    def encode_text(self, prompt: str) -> list[int]:
        return [WORDS.index(w) for w in prompt.split()]

    def decode_tokens(self, token_ids: list[int]) -> str:
        return " ".join(WORDS[t] for t in token_ids if t)

    def token_text(self, token_id: int) -> str:
        return WORDS[token_id]

    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None]):
        if any(CRASH in p for p in prompts):
            os._exit(3)
        return [{} for _ in prompts], None, [None] * len(prompts)

    def decode(self, states: list[Any], last_tokens: list[int]) -> Any:
        return None

    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        return [TokenChoice(token_id=next(p.generator), logprob=-0.5) for p in picks]

    def new_generator(self, seed: int | None) -> Any:
        return itertools.chain([1, 2, 3], itertools.repeat(0))
