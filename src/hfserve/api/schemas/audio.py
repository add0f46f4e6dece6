"""POST /v1/audio/transcriptions and /v1/audio/translations wire types: OpenAI's
(the request is a multipart form, declared on the route)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class AudioUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: int = Field(description="Seconds of audio, rounded up")


class Transcription(BaseModel):
    """``response_format`` json."""

    text: str
    usage: AudioUsage | None = None


class TranscriptionSegment(BaseModel):
    id: int
    seek: int = Field(0, description="Where the segment's 30 s window starts, in 10 ms "
                      "frames of the audio (Whisper's seek)")
    start: float
    end: float
    text: str
    temperature: float


class TranscriptionWord(BaseModel):
    word: str
    start: float
    end: float


class VerboseTranscription(BaseModel):
    """``response_format`` verbose_json."""

    task: Literal["transcribe", "translate"]
    language: str | None = Field(description="Given, or detected (Whisper); None where the "
                                 "model does not say")
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None
    usage: AudioUsage | None = None
