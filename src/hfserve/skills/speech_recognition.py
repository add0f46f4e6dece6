"""Speech recognition: Whisper (encoder-decoder, generated text with timestamps, language
given or detected, transcribe or translate) and CTC models (Wav2Vec2, HuBERT...: one
forward, the likeliest letter per frame).

The model runs inside transformers' own ``pipeline("automatic-speech-recognition")``,
built once on the loaded model: the pipeline owns what makes a transcript (Whisper's
generation config defaults, its long-form 30 s windows, the timestamp decoding of
``_decode_asr``, CTC's letter merging), so the server answers exactly what the pipeline
answers on the same folder. Audio is decoded (PyAV, within the model's limits) in
``prepare``, off the event loop; a batch runs the items that share their options as one
pipeline call, batched where padding cannot change a result (Whisper's windows under 30 s
are all padded to 30 s anyway)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.errors import InvalidRequest
from hfserve.media.audio import AudioLimits, audio_bytes, decode
from hfserve.skills.base import BatchSkill, Prepared
from hfserve.types import Task

TASKS = ("transcribe", "translate")
GRANULARITIES = ("segment", "word")
FRAME_SECONDS = 0.02        # a speech encoder's frame: an item's share of the batch budget


@dataclass(frozen=True)
class Segment:
    """A stretch of the transcript and where it lies in the audio (seconds; ``end`` None
    where the model stopped before closing it)."""

    start: float
    end: float | None
    text: str


@dataclass
class Transcript:
    """One audio file's result."""

    text: str
    duration: float
    task: str = "transcribe"
    language: str | None = None
    segments: list[Segment] = field(default_factory=list)
    words: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class SpeechOptions:
    """A request's options, checked once: items that share them run as one call."""

    language: str | None = None
    task: str = "transcribe"
    prompt: str | None = None
    temperature: float = 0.0
    granularities: tuple[str, ...] = ()

    @classmethod
    def of(cls, options: dict[str, Any]) -> SpeechOptions:
        task = options.get("task") or "transcribe"
        if task not in TASKS:
            raise InvalidRequest(f"task must be one of {', '.join(TASKS)}", param="task")
        temperature = float(options.get("temperature") or 0.0)
        if not 0.0 <= temperature <= 1.0:
            raise InvalidRequest("temperature must be between 0 and 1", param="temperature")
        granularities = tuple(dict.fromkeys(options.get("timestamp_granularities") or ()))
        bad = [g for g in granularities if g not in GRANULARITIES]
        if bad:
            raise InvalidRequest(f"timestamp_granularities must be among "
                                 f"{', '.join(GRANULARITIES)}, not {bad[0]!r}",
                                 param="timestamp_granularities[]")
        language = options.get("language") or None
        return cls(language.lower() if isinstance(language, str) else None, task,
                   options.get("prompt") or None, temperature, granularities)


@dataclass
class Audio:
    """One decoded file waiting for a batch."""

    samples: Any                # mono float32 at the model's sampling rate
    options: SpeechOptions
    duration: float


class SpeechRecognitionSkill(BatchSkill):
    task: ClassVar[Task] = Task.SPEECH_RECOGNITION
    backends: ClassVar[tuple[str, ...]] = ("torch",)

    def load(self, placement: Placement) -> None:
        from transformers import (
            AutoModelForCTC,
            AutoModelForSpeechSeq2Seq,
            AutoProcessor,
            pipeline,
        )

        self.placement = placement
        seq2seq = bool(self.spec.config.get("is_encoder_decoder"))
        self.model = load_torch_model(AutoModelForSpeechSeq2Seq if seq2seq else AutoModelForCTC,
                                      self.spec, placement)
        processor = AutoProcessor.from_pretrained(str(self.spec.path),
                                                  **tokenizer_kwargs(self.spec))
        self.tokenizer = processor.tokenizer
        self.extractor = processor.feature_extractor
        self.rate = int(self.extractor.sampling_rate)
        self.limits = AudioLimits.of(self.spec.options)
        self.pipe = pipeline("automatic-speech-recognition", model=self.model,
                             tokenizer=self.tokenizer, feature_extractor=self.extractor,
                             device=self.model.device)
        self.whisper = self.pipe.type == "seq2seq_whisper"
        # Whisper's window (30 s of samples); audio past it is decoded long-form.
        self.window = int(getattr(self.extractor, "n_samples", 0) or 0) if self.whisper else 0
        # Languages Whisper knows ("en", "english"), as its generate() takes them.
        config = getattr(self.pipe, "generation_config", None)
        self.languages = {code.strip("<|>") for code in getattr(config, "lang_to_id", {}) or {}}
        self.word_timestamps = not self.whisper or bool(getattr(config, "alignment_heads",
                                                                None))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "sampling_rate": self.rate,
                "timestamps": self.whisper, "translate": self.whisper}

    def unload(self) -> None:
        self.model = self.pipe = None

    # --- stages ----------------------------------------------------------------------
    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        chosen = self._check(SpeechOptions.of(options))
        samples = decode(audio_bytes(item, self.limits, "file"), self.rate, self.limits)
        duration = samples.size / self.rate
        return Prepared(payload=Audio(samples, chosen, duration),
                        cost=max(1, int(duration / FRAME_SECONDS)))

    def _check(self, options: SpeechOptions) -> SpeechOptions:
        if self.whisper:
            from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

            code = TO_LANGUAGE_CODE.get(options.language or "", options.language)
            if options.language and code not in self.languages:
                raise InvalidRequest(f"language {options.language!r} is not one this model "
                                     "knows (ISO-639-1, e.g. en)", param="language")
            if "word" in options.granularities and not self.word_timestamps:
                raise InvalidRequest("word timestamps need the model's alignment_heads, "
                                     "which its generation config lacks",
                                     param="timestamp_granularities[]")
            return options
        if options.task == "translate":
            raise InvalidRequest(f"model {self.spec.name!r} transcribes only (a CTC model "
                                 "does not translate)", param="model")
        if options.temperature > 0:
            raise InvalidRequest("a CTC model takes no temperature: it reads the likeliest "
                                 "letter of each frame", param="temperature")
        return options

    def run_batch(self, items: list[Prepared]) -> list[Transcript]:
        results: list[Transcript | None] = [None] * len(items)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, p in enumerate(items):
            audio: Audio = p.payload
            # Whisper pads every window under 30 s to 30 s: those batch exactly. Longer
            # audio (its own windows) and CTC (padding shifts its normalisation) run alone.
            alone = not self.whisper or audio.samples.size > self.window
            groups.setdefault((audio.options, i if alone else -1), []).append(i)
        for (options, _), members in groups.items():
            batch = [items[i].payload for i in members]
            for i, transcript in zip(members, self._transcribe(batch, options), strict=True):
                results[i] = transcript
        return results  # type: ignore[return-value]

    def _transcribe(self, batch: list[Audio], options: SpeechOptions) -> list[Transcript]:
        long = self.whisper and any(a.samples.size > self.window for a in batch)
        segments = bool(options.granularities) or long
        outputs = self._call(batch, options, True if self.whisper and segments else None)
        words = self._call(batch, options, "word") if "word" in options.granularities \
            else [{}] * len(batch)
        return [self._transcript(audio, options, out, worded)
                for audio, out, worded in zip(batch, outputs, words, strict=True)]

    def _call(self, batch: list[Audio], options: SpeechOptions, timestamps: Any
              ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if timestamps:
            kwargs["return_timestamps"] = timestamps
        if self.whisper:
            kwargs["generate_kwargs"] = self._generate_kwargs(options)
            if timestamps:
                kwargs["return_language"] = True
        # Copies: the pipeline may change its input in place; results stay per item.
        return self.pipe([a.samples.copy() for a in batch], batch_size=len(batch),
                         num_workers=0, **kwargs)

    def _generate_kwargs(self, options: SpeechOptions) -> dict[str, Any]:
        # transcribe is generate()'s own default: named only when it is not, so that a
        # request without options decodes as the pipeline called without any does.
        kwargs: dict[str, Any] = {"task": options.task} if options.task != "transcribe" else {}
        if options.language:
            kwargs["language"] = options.language
        if options.temperature > 0:
            kwargs.update(do_sample=True, temperature=options.temperature, num_beams=1)
        if options.prompt:
            kwargs["prompt_ids"] = self.tokenizer.get_prompt_ids(
                options.prompt, return_tensors="pt").to(self.model.device)
        return kwargs

    def _transcript(self, audio: Audio, options: SpeechOptions, out: dict[str, Any],
                    worded: dict[str, Any]) -> Transcript:
        chunks = out.get("chunks") or []
        language = options.language or next(
            (c.get("language") for c in chunks if c.get("language")), None)
        if self.whisper and language:       # OpenAI names it in full: "english"
            from transformers.models.whisper.tokenization_whisper import LANGUAGES

            language = LANGUAGES.get(language, language)
        if self.whisper and chunks:
            segments = [_segment(c) for c in chunks]
        else:       # no segments of its own: the transcript spans the audio
            segments = [Segment(0.0, round(audio.duration, 3), out["text"])]
        return Transcript(text=out["text"], duration=audio.duration, task=options.task,
                          language=language, segments=segments,
                          words=[_segment(c) for c in worded.get("chunks") or []])


def _segment(chunk: dict[str, Any]) -> Segment:
    start, end = chunk["timestamp"]
    return Segment(float(start or 0.0), None if end is None else float(end), chunk["text"])
