"""Decode uploaded audio into the mono float32 waveform a speech model takes.

PyAV is used rather than soundfile: it bundles ffmpeg, so one wheel decodes every format
clients send (wav, flac, mp3, ogg/opus, webm) and resamples, with no system library.
The duration is checked from the container header before decoding, and decoding stops
at the limit whatever the header claimed, so a lying file never costs more than the limit.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import wave
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from hfserve.errors import InvalidRequest, PayloadTooLarge


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 25 * 1024 * 1024      # the OpenAI audio API's upload limit
    max_seconds: float = 3600.0

    @classmethod
    def of(cls, options: dict[str, Any]) -> AudioLimits:
        """The limits a model's settings (``ModelConfig``) give, defaults where unset."""
        base = cls()
        return cls(int(options.get("max_audio_bytes") or base.max_bytes),
                   float(options.get("max_audio_seconds") or base.max_seconds))


def audio_bytes(item: Any, limits: AudioLimits, param: str = "input") -> bytes:
    """The encoded bytes of an input: raw bytes (an upload), or a string holding a
    ``data:audio/...;base64,`` URL or bare base64 data (a JSON body). Never a path or URL:
    a request must not make the server read its own disk or fetch for it."""
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if not isinstance(item, str) or not item:
        raise InvalidRequest("each input must be audio: a data URL or base64 data",
                             param=param)
    header, comma, data = item.partition(",")
    if comma and header.lower().startswith("data:"):
        if not header.lower().endswith(";base64"):
            raise InvalidRequest("audio data URLs must be base64 (data:audio/...;base64,...)",
                                 param=param)
    else:
        data = item
    if len(data) * 3 // 4 > limits.max_bytes:
        raise PayloadTooLarge(f"audio is larger than this model's limit of "
                              f"{limits.max_bytes} bytes", param=param)
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("audio input is neither a data URL nor base64 data",
                             param=param) from None


def decode(data: bytes, sampling_rate: int, limits: AudioLimits = AudioLimits(),
           param: str = "file") -> np.ndarray:
    """The mono waveform at ``sampling_rate`` Hz; a 400 for anything that is not audio
    within the limits."""
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"audio file is {len(data)} bytes, over the limit of "
                              f"{limits.max_bytes}", param=param)
    if not data:
        raise InvalidRequest("audio file is empty", param=param)
    claimed = _wav_seconds(data)
    if claimed is not None and claimed > limits.max_seconds:
        raise InvalidRequest(f"audio header claims {claimed:.0f} s, over the limit of "
                             f"{limits.max_seconds:.0f} s", param=param)
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidRequest(f"could not read the audio file: {_reason(exc)}",
                             param=param) from None
    with container:
        if not container.streams.audio:
            raise InvalidRequest("the file holds no audio stream", param=param)
        stream = container.streams.audio[0]
        claimed = _seconds(container, stream)
        if claimed is not None and claimed > limits.max_seconds:
            raise InvalidRequest(f"audio is {claimed:.0f} s long, over the limit of "
                                 f"{limits.max_seconds:.0f} s", param=param)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        budget = int(limits.max_seconds * sampling_rate)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total > budget:
                    raise InvalidRequest(f"audio is over the limit of "
                                         f"{limits.max_seconds:.0f} s", param=param)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            raise InvalidRequest(f"could not decode the audio file: {_reason(exc)}",
                                 param=param) from None
    if not chunks or sum(c.size for c in chunks) == 0:
        raise InvalidRequest("the audio file holds no samples (truncated?)", param=param)
    return np.concatenate(chunks).astype(np.float32, copy=False)


async def decode_async(data: bytes, sampling_rate: int, limits: AudioLimits = AudioLimits(),
                       param: str = "file") -> np.ndarray:
    """:func:`decode` in a worker thread, so decoding never stalls the event loop."""
    return await asyncio.to_thread(decode, data, sampling_rate, limits, param)


def _wav_seconds(data: bytes) -> float | None:
    """What a PCM WAV header claims to hold, in seconds; None for any other file. ffmpeg
    trusts the file's size over a WAV header, so a header claiming hours over a few bytes
    would pass it: such a file is a lie, refused like a long one (stdlib ``wave`` reads the
    header alone)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as header:
            return header.getnframes() / header.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


def _seconds(container: av.container.InputContainer, stream: av.audio.AudioStream
             ) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
