"""Plain data types shared by every layer: tasks, architecture families, model specs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Task(StrEnum):
    """What a served model does; a skill implements exactly one task."""

    EMBEDDING = "embedding"
    TEXT_GENERATION = "text-generation"
    TEXT_CLASSIFICATION = "text-classification"
    ZERO_SHOT = "zero-shot-classification"
    TOKEN_CLASSIFICATION = "token-classification"
    RERANK = "rerank"
    TEXT2TEXT = "text2text-generation"
    IMAGE_CLASSIFICATION = "image-classification"
    OBJECT_DETECTION = "object-detection"
    SPEECH_RECOGNITION = "automatic-speech-recognition"
    AUDIO_CLASSIFICATION = "audio-classification"
    ZERO_SHOT_IMAGE = "zero-shot-image-classification"
    IMAGE_TEXT_TO_TEXT = "image-text-to-text"
    FILL_MASK = "fill-mask"
    FEATURE_EXTRACTION = "feature-extraction"
    TEXT_TO_IMAGE = "text-to-image"


@dataclass(frozen=True)
class TokenSpan:
    """One token of a tokenized text: its id, its text (the token's own string for special
    tokens) and, for tokens of the text, where it starts and stops in it (characters)."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class Family(StrEnum):
    """Architecture family: decides hardware compatibility and the default task."""

    ENCODER_ONLY = "encoder-only"
    DECODER_ONLY = "decoder-only"
    ENCODER_DECODER = "encoder-decoder"
    VISION = "vision"
    OBJECT_DETECTION = "object-detection"
    SPEECH = "speech"
    SPEECH_GENERATION = "speech-generation"
    VISION_TEXT = "vision-text"
    VISION_LANGUAGE = "vision-language"
    MOE = "moe"
    STATE_SPACE = "state-space"
    DIFFUSION = "diffusion"


class ModelState(StrEnum):
    """Lifecycle of one known model (docs/architecture.md has the diagram)."""

    UNLOADED = "unloaded"        # known, not in memory; a request loads it
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"            # its last load failed (or its process kept dying)
    DRAINING = "draining"        # unloading: requests in flight finish, new ones wait
    UNSUPPORTED = "unsupported"  # discovered, but no skill serves it


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about a model before it is loaded.

    ``path`` is a local folder (or the folder holding ``gguf_file``); ``config`` is the
    raw config.json dict (or the one rebuilt from GGUF metadata). ``checkpoint_dtype`` is
    what the weights are stored in ("bfloat16", ...), None where the files do not say.
    """

    name: str
    source: str
    path: Path
    architecture: str
    model_type: str
    family: Family
    task: Task
    tasks: tuple[Task, ...]
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    gguf_file: str | None = None
    parameters: int | None = None
    max_context: int | None = None
    checkpoint_dtype: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Constraint:
    """What a constrained sequence's output must match: a JSON schema (its text) or a
    regular expression, with fixed text around it (``prefix``/``suffix``: the markers of a
    tool-call format). Plain data, so it crosses the pipe to a model process."""

    kind: str                      # "json_schema" | "regex"
    value: str
    prefix: str = ""
    suffix: str = ""

    @property
    def key(self) -> str:
        """A digest naming the constraint, for caches of compiled grammars."""
        text = "\0".join((self.kind, self.value, self.prefix, self.suffix))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class SamplingParams:
    """Per-sequence decoding choices; validated by the API layer before they get here."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None        # top-k alternatives per token; None = no logprobs
    prompt_logprobs: int | None = None  # same for prompt tokens (completions echo)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    constraint: Constraint | None = None  # structured output (a grammar engine masks)


@dataclass
class Pick:
    """One sequence's next-token choice from row ``row`` of a step's logits."""

    row: int
    params: SamplingParams
    generator: Any
    history: list[int]
    grammar: Any = None        # the sequence's grammar matcher, when its output is constrained


@dataclass
class TokenChoice:
    """One sampled token with its log-probability and the top alternatives."""

    token_id: int
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None
    text: str | None = None                          # filled when logprobs are asked for
    top_text: list[tuple[str, float]] | None = None
