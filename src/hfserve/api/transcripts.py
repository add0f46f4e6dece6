"""A transcript in each of OpenAI's ``response_format``s: json, text, verbose_json with
segments (and words), and the SubRip (srt) and WebVTT (vtt) subtitle formats."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import PlainTextResponse, Response

from hfserve.api.schemas.audio import (
    AudioUsage,
    Transcription,
    TranscriptionSegment,
    TranscriptionWord,
    VerboseTranscription,
)


def _end(segment: Any, duration: float) -> float:
    """A segment's end; the audio's end where the model left it open."""
    return float(segment.end if segment.end is not None else duration)


def _clock(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def cue_text(text: str) -> str:
    """A segment's text as one cue line: a blank line would end the cue early."""
    return " ".join(text.split())


def _cues(transcript: Any) -> list[tuple[Any, str]]:
    """The segments that say something, with their cue text (an empty cue shows nothing)."""
    return [(s, cue_text(s.text)) for s in transcript.segments if cue_text(s.text)]


def srt(transcript: Any) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line after each."""
    cues = [f"{i}\n{_clock(s.start, ',')} --> {_clock(_end(s, transcript.duration), ',')}\n"
            f"{text}\n" for i, (s, text) in enumerate(_cues(transcript), 1)]
    return "\n".join(cues)


def vtt(transcript: Any) -> str:
    """WebVTT: the ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm`` times."""
    cues = [f"{_clock(s.start, '.')} --> {_clock(_end(s, transcript.duration), '.')}\n"
            f"{text}\n" for s, text in _cues(transcript)]
    return "\n".join(["WEBVTT\n", *cues])


def verbose(transcript: Any, granularities: tuple[str, ...], temperature: float
            ) -> VerboseTranscription:
    """OpenAI's verbose_json: segments unless only words were asked for, words if asked."""
    segments = None if granularities == ("word",) else [
        TranscriptionSegment(id=i, seek=int(s.start * 100) // 3000 * 3000, start=s.start,
                             end=_end(s, transcript.duration), text=s.text,
                             temperature=temperature)
        for i, s in enumerate(transcript.segments)]
    words = [TranscriptionWord(word=w.text.strip(), start=w.start,
                               end=_end(w, transcript.duration))
             for w in transcript.words] if "word" in granularities else None
    return VerboseTranscription(task=transcript.task, language=transcript.language,
                                duration=round(transcript.duration, 3), text=transcript.text,
                                segments=segments, words=words, usage=_usage(transcript))


def _usage(transcript: Any) -> AudioUsage:
    return AudioUsage(seconds=math.ceil(transcript.duration))


def render(transcript: Any, response_format: str, granularities: tuple[str, ...],
           temperature: float) -> Response:
    if response_format == "text":
        return PlainTextResponse(transcript.text)
    if response_format == "srt":
        return PlainTextResponse(srt(transcript))
    if response_format == "vtt":
        return PlainTextResponse(vtt(transcript), media_type="text/vtt")
    body = verbose(transcript, granularities, temperature) if response_format == "verbose_json" \
        else Transcription(text=transcript.text, usage=_usage(transcript))
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json")
