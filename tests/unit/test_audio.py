"""The audio media module: formats, resampling, limits and bad files."""
from __future__ import annotations

import io
import struct
import wave

import av
import numpy as np
import pytest

from hfserve.errors import InvalidRequest, PayloadTooLarge
from hfserve.media.audio import AudioLimits, decode, decode_async


def _tone(rate: int = 8000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        pcm = (np.repeat(samples, channels) * 32767).astype("<i2")
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _encode(samples: np.ndarray, rate: int, fmt: str, codec: str) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate if codec != "libopus" else 48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt",
                                           layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono",
                                      rate=stream.rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def test_wav_is_resampled_to_the_model_rate():
    wave16 = decode(_wav(_tone(8000), 8000), 16000)
    assert wave16.dtype == np.float32
    assert abs(wave16.size - 16000) < 200
    assert 0.4 < float(np.abs(wave16).max()) < 0.6


def test_stereo_is_mixed_to_mono():
    assert abs(decode(_wav(_tone(16000), 16000, channels=2), 16000).size - 16000) < 200


@pytest.mark.parametrize(("fmt", "codec"), [("flac", "flac"), ("mp3", "libmp3lame"),
                                            ("ogg", "libopus"), ("webm", "libopus")])
def test_compressed_formats_decode(fmt, codec):
    try:
        data = _encode(_tone(16000), 16000, fmt, codec)
    except (av.FFmpegError, ValueError) as exc:    # an encoder missing from the wheel
        pytest.skip(f"no {codec} encoder: {exc}")
    out = decode(data, 16000)
    assert abs(out.size - 16000) < 2000
    assert float(np.abs(out).max()) > 0.2


def test_oversized_upload_is_refused_before_decoding():
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        decode(b"\0" * 2048, 16000, AudioLimits(max_bytes=1024))


def test_non_audio_file_is_a_clear_error():
    with pytest.raises(InvalidRequest, match="could not read|no audio"):
        decode(b"this is plainly not an audio file" * 20, 16000)


def test_empty_file_is_refused():
    with pytest.raises(InvalidRequest, match="empty"):
        decode(b"", 16000)


def test_truncated_file_is_a_clear_error():
    with pytest.raises(InvalidRequest):
        decode(_wav(_tone(16000), 16000)[:30], 16000)


def test_header_claiming_ten_hours_is_refused_before_decoding():
    # ffmpeg trusts the file size over the header; the header's own claim is checked first
    rate = 16000
    frames = rate * 3600 * 10
    header = (b"RIFF" + struct.pack("<I", 36 + frames * 2) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
              + b"data" + struct.pack("<I", frames * 2))
    with pytest.raises(InvalidRequest, match="claims 36000 s, over the limit of 600 s"):
        decode(header + b"\0" * 3200, rate, AudioLimits(max_seconds=600))


def test_decoding_stops_at_the_limit_whatever_the_header_says():
    with pytest.raises(InvalidRequest, match="over the limit"):
        decode(_wav(_tone(16000, 3.0), 16000), 16000, AudioLimits(max_seconds=1.0))


async def test_decode_async_runs_off_the_loop():
    out = await decode_async(_wav(_tone(16000), 16000), 16000)
    assert abs(out.size - 16000) < 200
