"""Torch-free skills for the in-process API tests.

Both skills are selected by the real registry (their models are tiny config.json folders) and
run under the real batcher and scheduler. Behaviour is steered by the inputs themselves and
by the shared ``CONTROL`` switches, which the tests reset and release.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hfserve.backends.placement import Placement
from hfserve.errors import InvalidRequest
from hfserve.skills.base import BatchSkill, GenerativeSkill, Prepared
from hfserve.types import Pick, Task, TokenChoice

DIMENSIONS = 4
BLOCK = "block"              # an embedding input that holds the worker until released
FOREVER = "forever"          # a prompt word that makes the reply endless
EXPLODE = "explode"          # a prompt word that makes decode fail after two tokens
SLOW_LOAD = "fake_slow_load"  # a config.json key that makes load wait until released
FAIL_LOAD = "fake_fail_load"  # a config.json key that makes every load fail
OOM = "oom"                  # an embedding input that exhausts any device but the CPU


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which is what the runtime recognises."""

VOCAB = ["<eos>", "<unk>", "user:", "assistant:", "system:", "hello", "world", "how", "are",
         "you", "fine", "thanks", "the", "end", "say", "something", "once", "upon", "a",
         "time", FOREVER, EXPLODE]
EOS = 0
REPLY = ["hello", "world", "the", "end"]


class Control:
    """Switches and counters shared between the tests and the fakes' worker threads."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.load_release = threading.Event()
        self.run_started = threading.Event()
        self.run_release = threading.Event()
        self.loads: list[str] = []
        self.batches: list[list[str]] = []
        self.prefills: list[list[int]] = []
        self.released: list[int] = []
        self.decode_steps = 0
        self.lock = threading.Lock()

    def release_all(self) -> None:
        self.load_release.set()
        self.run_release.set()


CONTROL = Control()


def embed(text: str) -> np.ndarray:
    """A vector derived from the text: length, word count, first letter, constant."""
    first = ord(text[0]) / 100 if text else 0.0
    return np.array([len(text), len(text.split()), first, 1.0], dtype=np.float32)


def vector_of_ids(ids: list[int]) -> np.ndarray:
    return np.array([len(ids), sum(ids), ids[0] / 100, 1.0], dtype=np.float32)


class FakeEmbeddingSkill(BatchSkill):
    task: ClassVar[Task] = Task.EMBEDDING

    def load(self, placement: Placement) -> None:
        CONTROL.loads.append(self.spec.name)
        if self.spec.config.get(SLOW_LOAD):
            CONTROL.load_release.wait(30)
        if self.spec.config.get(FAIL_LOAD):
            raise RuntimeError("the weights are corrupt")
        self.placement = placement

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        if isinstance(item, str):
            if not item:
                raise InvalidRequest("input must not be an empty string", param="input")
            return Prepared(payload=_Item(item, options), cost=len(item.split()))
        if isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            return Prepared(payload=_Item(list(item), options), cost=len(item))
        raise InvalidRequest("each input must be a non-empty string or list of token ids",
                             param="input")

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        unpooled = [p.payload.options.get("pooling") == "none" for p in items]
        payloads = [p.payload.value for p in items]
        with CONTROL.lock:
            CONTROL.batches.append([str(p) for p in payloads])
        if OOM in payloads and self.placement.device != "cpu":
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if BLOCK in payloads:
            CONTROL.run_started.set()
            CONTROL.run_release.wait(30)
        vectors = [embed(p) if isinstance(p, str) else vector_of_ids(p) for p in payloads]
        # Unpooled (TEI's /embed_all): a row per token, here the vector repeated per word.
        return [np.tile(v, (p.cost, 1)) if raw else v
                for v, p, raw in zip(vectors, items, unpooled, strict=True)]


@dataclass
class _Item:
    value: Any
    options: dict[str, Any]


class FakeGenerationSkill(GenerativeSkill):
    """The tokenizer is the VOCAB word list; the 'model' replies with REPLY then eos
    (endlessly when the prompt says FOREVER; failing on the third token after EXPLODE)."""

    task: ClassVar[Task] = Task.TEXT_GENERATION
    eos_token_ids = frozenset({EOS})

    def load(self, placement: Placement) -> None:
        CONTROL.loads.append(self.spec.name)
        if self.spec.config.get(SLOW_LOAD):
            CONTROL.load_release.wait(30)
        self.placement = placement
        self.max_context = self.spec.max_context or 64
        self._ids = itertools.count()
        self._mode = "reply"

    # --- text <-> tokens
    def encode_text(self, prompt: str) -> list[int]:
        return [VOCAB.index(w) if w in VOCAB else 1 for w in prompt.split()]

    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        ids: list[int] = []
        for message in messages:
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise InvalidRequest("only text content", param="messages")
            ids += [VOCAB.index(f"{message['role']}:")] if f"{message['role']}:" in VOCAB \
                else [1]
            ids += self.encode_text(content)
        return [*ids, VOCAB.index("assistant:")]

    def decode_tokens(self, token_ids: list[int]) -> str:
        return " ".join(VOCAB[t] for t in token_ids if t != EOS)

    def check_token_ids(self, token_ids: list[int], param: str = "prompt") -> None:
        bad = next((t for t in token_ids if not 0 <= t < len(VOCAB)), None)
        if bad is not None:
            raise InvalidRequest(f"token id {bad} is outside the vocabulary", param=param)

    def token_text(self, token_id: int) -> str:
        return VOCAB[token_id]

    # --- model stages
    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None]):
        (prompt_ids,), (wanted,) = prompts, prompt_logprobs   # max_prefill_batch is 1
        with CONTROL.lock:
            CONTROL.prefills.append(list(prompt_ids))
        words = {VOCAB[t] for t in prompt_ids}
        self._mode = FOREVER if FOREVER in words else EXPLODE if EXPLODE in words else "reply"
        state = {"id": next(self._ids), "tokens": 1, "explode": self._mode == EXPLODE}
        prompt = None
        if wanted is not None:
            prompt = [TokenChoice(token_id=t, logprob=-1.0) for t in prompt_ids[1:]]
        return [state], None, [prompt]

    def decode(self, states: list[Any], last_tokens: list[int]) -> list[Any]:
        with CONTROL.lock:
            CONTROL.decode_steps += 1
        if self._mode == FOREVER:
            time.sleep(0.005)
        for state in states:
            if state["explode"] and state["tokens"] >= 2:
                raise RuntimeError("fake decode failure")
            state["tokens"] += 1
        return [None] * len(states)

    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        out = []
        for pick in picks:
            token = next(pick.generator)
            top = [(token, -0.25)] if pick.params.logprobs else None
            out.append(TokenChoice(token_id=token, logprob=-0.25, top=top))
        return out

    def new_generator(self, seed: int | None) -> Iterator[int]:
        reply = [VOCAB.index(w) for w in REPLY]
        if self._mode == FOREVER:
            return itertools.cycle(reply)
        return itertools.chain(reply, itertools.repeat(EOS))

    def release(self, state: Any) -> None:
        with CONTROL.lock:
            CONTROL.released.append(state["id"])

    def copy_state(self, state: Any) -> Any:
        return {**state, "id": next(self._ids)}
