"""Skill contracts. A skill holds one loaded model and exposes pure stages; it never sees a
queue, a request object of the HTTP layer, or an event loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.errors import InvalidRequest
from hfserve.types import (
    Constraint,
    ModelSpec,
    Pick,
    SamplingParams,
    Task,
    TokenChoice,
    TokenSpan,
)


class Skill(ABC):
    """Common part of every skill."""

    task: ClassVar[Task]
    # Every task the loaded skill serves (default: its ``task``).
    also_serves: ClassVar[tuple[Task, ...]] = ()
    backends: ClassVar[tuple[str, ...]] = ("torch",)   # backends this skill can load on
    # Generation skills whose loop holds the interpreter lock run best in a process of
    # their own (runtime/process/proxy.py), unless the model config says otherwise.
    own_process: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.placement = Placement()

    @abstractmethod
    def load(self, placement: Placement) -> None:
        """Load weights onto ``placement``; raise on failure (the runtime falls back)."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Drop references to the weights so memory can be reclaimed."""

    @staticmethod
    def is_out_of_memory(exc: BaseException) -> bool:
        """Did the device run out of memory? (torch.cuda.OutOfMemoryError, MPS, HIP...)"""
        return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()

    def worker_init(self) -> None:
        """Called once on the model's worker thread before it runs anything."""
        if self.placement.threads and self.placement.backend == "torch":
            import torch

            torch.set_num_threads(self.placement.threads)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return (self.task, *self.also_serves)

    def info(self) -> dict[str, Any]:
        return {"device": self.placement.device, "dtype": self.placement.dtype,
                "backend": self.placement.backend, "threads": self.placement.threads}

    # --- the tokenizer's view (TEI's /tokenize and /decode), for skills that hold one -----
    def text_tokenizer(self) -> Any:
        """The HuggingFace tokenizer of the loaded model."""
        tokenizer = getattr(self, "tokenizer", None)
        if tokenizer is None:
            raise InvalidRequest(f"model {self.spec.name!r} has no tokenizer", param="model")
        return tokenizer

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        """``text`` as the model's tokenizer cuts it, with character offsets where the
        tokenizer gives them (fast tokenizers do)."""
        tokenizer = self.text_tokenizer()
        fast = bool(getattr(tokenizer, "is_fast", False))
        encoded = tokenizer(text, add_special_tokens=add_special_tokens,
                            return_offsets_mapping=fast)
        ids = list(encoded["input_ids"])
        offsets = encoded.get("offset_mapping") or [None] * len(ids)
        special = set(tokenizer.all_special_ids)
        pieces = tokenizer.convert_ids_to_tokens(ids)
        spans = []
        for token_id, piece, offset in zip(ids, pieces, offsets, strict=True):
            if token_id in special or offset is None:
                spans.append(TokenSpan(token_id, piece, token_id in special, None, None))
            else:
                spans.append(TokenSpan(token_id, text[offset[0]:offset[1]], False, *offset))
        return spans

    def detokenize(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        tokenizer = self.text_tokenizer()
        size = len(tokenizer)
        bad = next((t for t in token_ids if not 0 <= t < size), None)
        if bad is not None:
            raise InvalidRequest(f"token id {bad} is outside this model's vocabulary "
                                 f"(0..{size - 1})", param="ids")
        return tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)


def input_limit(*candidates: Any, default: int = 512) -> int:
    """The smallest of the lengths a model's files give (config, tokenizer, settings), where
    they give one: tokenizers without a limit report a huge sentinel instead."""
    limits = [v for v in candidates if isinstance(v, int) and 0 < v < 1_000_000]
    return min(limits) if limits else default


@dataclass
class Prepared:
    """One validated, tokenized item waiting for a batch; ``cost`` is its token count."""

    payload: Any
    cost: int


class BatchSkill(Skill):
    """Encoder-style work: items are independent, batched by the runtime's batcher."""

    # Batches that may run at once, each from a thread of its own (set by ``load``).
    workers: int = 1

    @property
    def tasks(self) -> tuple[Task, ...]:
        return (self.task, *self.also_serves)

    def info(self) -> dict[str, Any]:
        return {**super().info(), **({"streams": self.workers} if self.workers > 1 else {})}

    @abstractmethod
    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        """Validate and tokenize one item (runs off the event loop, before queueing)."""

    @abstractmethod
    def run_batch(self, items: list[Prepared]) -> list[Any]:
        """preprocess -> forward -> postprocess for a batch: one result per item."""


class TextGenerator(Skill):
    """What every text-generating skill offers the runtime: its tokenizer's view of text."""

    eos_token_ids: frozenset[int] = frozenset()
    max_context: int = 2048
    supports_prompt_logprobs: ClassVar[bool] = True
    supports_top_logprobs: ClassVar[bool] = True
    # Applies LoRA adapters per sequence: ``prefill`` takes ``adapters`` (one per prompt),
    # ``prefill_part`` an ``adapter``, and ``add_adapter``/``remove_adapter`` change the set
    # loaded (on the worker's thread, between steps).
    serves_adapters: ClassVar[bool] = False

    @abstractmethod
    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        """Render the chat template and tokenize (off the event loop)."""

    def encode_chat_inputs(self, messages: list[dict[str, Any]], options: dict[str, Any]
                           ) -> tuple[list[int], dict[str, Any] | None]:
        """``encode_chat``, with the model inputs besides the ids that the messages' media
        become (a vision-language model's ``pixel_values``; None: there are none). Off the
        event loop, as ``encode_chat``."""
        return self.encode_chat(messages, options), None

    @abstractmethod
    def encode_text(self, prompt: str) -> list[int]:
        """Tokenize a raw prompt."""

    @abstractmethod
    def decode_tokens(self, token_ids: list[int]) -> str:
        """Token ids -> text, without special tokens."""

    @abstractmethod
    def token_text(self, token_id: int) -> str:
        """Text of one token, for logprobs."""

    def text_stream(self) -> Any:
        """A new incremental decoder for one sequence, or None where there is none: an
        object whose ``step(token_id)`` returns the text that token completes (None while a
        character is still incomplete), the same text as ``decode_tokens`` of the whole."""
        return None

    @classmethod
    def text_codec(cls) -> TextGenerator | None:
        """A new object holding only this skill's text side (tokenizer, chat template):
        ``load_tokenizer(spec, cache_dir=...)`` and the text methods above. A model run in
        a process of its own keeps one in the server process. None: the skill has none."""
        return None

    def check_token_ids(self, token_ids: list[int], param: str = "prompt") -> None:
        """Raise InvalidRequest (naming ``param``) for ids the model has no embedding for
        (prompts given as token ids, stop token ids)."""

    def check_constraint(self, constraint: Constraint | None) -> None:
        """Raise InvalidRequest (``param`` response_format) for an output constraint this
        skill cannot enforce; before the request is queued."""
        if constraint is not None:
            raise InvalidRequest("structured output is not available on this model's "
                                 "backend", param="response_format")

    @property
    def tool_parser(self) -> str:
        """The tool-call format this model writes (a name in ``hfserve.tool_calls``)."""
        return "json"


class GenerativeSkill(TextGenerator):
    """Autoregressive work. The runtime's scheduler owns the loop and calls these stages;
    ``state`` is an opaque per-sequence object (its place in the KV cache) the skill creates
    and frees. Logits are opaque too: rows of a step, read only through ``sample``."""

    # How many prompts one prefill call may take, and how many prompt tokens the scheduler
    # prefills between two decode steps while other sequences stream.
    max_prefill_batch: int = 1
    prefill_budget: int = 512
    # While sequences stream, newcomers may wait up to this many decode steps so that more
    # of them share one prefill (0: each is prefilled at the next step).
    prefill_wait_steps: int = 0
    # Start each decode step before the previous step's tokens are turned into text (for
    # devices that compute asynchronously; see Scheduler._step_overlapped).
    overlap_steps: bool = False
    # ``decode`` can take the tokens of the step before from where ``sample_later`` left
    # them on the device (its ``fed`` argument), so that a step is queued before the one
    # before it has finished (see Scheduler._step_overlapped).
    feeds_tokens: bool = False
    # Where it does, and many sequences run: steps queued back to back before their tokens
    # are turned into text, together (see Scheduler._step_overlapped).
    decode_steps: int = 1

    @abstractmethod
    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None]
                ) -> tuple[list[Any], Any, list[list[TokenChoice] | None]]:
        """Run the prompts together; return (a state per prompt, next-token logits with a
        row per prompt, each prompt's token choices or None). Where a prompt has media
        (``encode_chat_inputs``), the scheduler passes a third argument, ``media``: each
        prompt's model inputs besides its ids, or None; only skills whose codec makes media
        get it."""

    # Whether a prompt can be prefilled in parts (``prefill_part``, then ``finish_prefill``),
    # so that one longer than ``prefill_budget`` does not stall the running sequences.
    chunked_prefill: bool = False

    def prefill_part(self, partial: Any | None, ids: list[int]) -> Any:
        """Feed ``ids``, the next part of one prompt, into a cache of its own (``partial``
        None for the first part); return the partial prefill to pass on."""
        raise NotImplementedError(f"{type(self).__name__} prefills whole prompts only")

    def finish_prefill(self, partial: Any, ids: list[int]
                       ) -> tuple[list[Any], Any, list[list[TokenChoice] | None]]:
        """Feed the prompt's last part ``ids``; return what ``prefill`` returns for it."""
        raise NotImplementedError(f"{type(self).__name__} prefills whole prompts only")

    @abstractmethod
    def decode(self, states: list[Any], last_tokens: list[int]) -> Any:
        """One step for each sequence: feed its last token; return logits, a row each.
        A skill with ``feeds_tokens`` also takes ``fed``: ``(pending, indices)``, where
        ``pending`` is what ``sample_later`` returned for the step before and the first
        ``len(indices)`` sequences' last tokens are its choices at ``indices`` (their
        ``last_tokens`` entries are placeholders)."""

    @abstractmethod
    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        """The next token of each pick, from its row of ``logits`` under its params."""

    def sample_later(self, logits: Any, picks: list[Pick]) -> Callable[[], list[TokenChoice]]:
        """Start ``sample``; the returned call waits for its result. Skills whose device
        runs asynchronously return before the choices are known."""
        choices = self.sample(logits, picks)
        return lambda: choices

    def release(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Free a sequence's cache."""

    def fork(self, state: Any, copies: int) -> list[Any]:
        """Independent copies of a prefilled state (for ``n`` > 1)."""
        return [state] + [self.copy_state(state) for _ in range(copies - 1)]

    def copy_state(self, state: Any) -> Any:
        import copy

        return copy.deepcopy(state)

    @abstractmethod
    def new_generator(self, seed: int | None) -> Any:
        """A random generator for one sequence (seeded when ``seed`` is given)."""

    def guide(self, constraint: Constraint) -> Any:
        """A new sequence's place in the grammar of ``constraint`` (``Pick.grammar``);
        dropping it releases it."""
        raise InvalidRequest("structured output is not available on this model's backend",
                             param="response_format")


@dataclass
class PipelineOutput:
    """New tokens of a pipeline request (one sequence) since the last read."""

    token_ids: list[int]
    logprobs: list[float] | None
    finished: bool


class PipelineSkill(TextGenerator):
    """A generation engine that owns its own continuous-batching loop (openvino-genai,
    transformers' continuous batching). The runtime's pipeline worker feeds it requests,
    calls ``step`` and reads tokens; it never sees a model stage.

    Such an engine reports at most the chosen token's log-probability. A skill that can
    score whole token sequences besides (``score``) serves prompt logprobs and the top
    alternatives of generated tokens from that, and says so in the two flags."""

    supports_prompt_logprobs: ClassVar[bool] = False
    supports_top_logprobs: ClassVar[bool] = False

    def score(self, ids: list[int], start: int, k: int | None) -> list[TokenChoice]:
        """``ids[start:]`` (``start`` >= 1), each with its log-probability given the tokens
        before it and the ``k`` likeliest tokens at its place (none when ``k`` is 0 or
        None). Runs on the worker's thread, between steps."""
        raise NotImplementedError

    @abstractmethod
    def add(self, key: int, prompt_ids: list[int], params: SamplingParams) -> Any:
        """Queue one sequence; return its handle."""

    @abstractmethod
    def step(self) -> None:
        """Advance every running request by one scheduling step."""

    @abstractmethod
    def has_work(self) -> bool:
        """Are any requests unfinished?"""

    @abstractmethod
    def read(self, handle: Any) -> PipelineOutput:
        """Tokens produced for ``handle`` since the last read."""

    @abstractmethod
    def cancel(self, handle: Any) -> None:
        """Stop a request and free its cache."""
