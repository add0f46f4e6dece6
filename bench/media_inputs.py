"""Inputs of the media benchmark, made here (no data sets are downloaded): a fixed set of
224x224 PNGs (seeded colour gradients with noise on top, so that no two decode to the same
pixels), and ten seconds of speech spoken by espeak-ng from a fixed paragraph, 16 kHz mono
16-bit WAV."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

PARAGRAPH = (
    "The old lighthouse keeper climbed the narrow stairs every evening before sunset. "
    "He cleaned the heavy lens, wound the clockwork that turned it, and wrote the weather "
    "in a worn leather book. Ships passing the rocks at night never knew his name, but "
    "they trusted the light he kept burning until morning."
)


def png(seed: int, size: int = 224) -> bytes:
    """A gradient between two random colours in a random direction, with noise on top."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * x + np.sin(angle) * y)
    t = (t - t.min()) / (t.max() - t.min())
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = a + t[..., None] * (b - a) + rng.normal(0, 12, (size, size, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def images(count: int = 32, size: int = 224) -> list[bytes]:
    return [png(seed, size) for seed in range(count)]


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def speech(seconds: float = 10.0, rate: int = 16_000, text: str = PARAGRAPH) -> bytes:
    """``text`` spoken by espeak-ng, resampled by sox to ``rate`` Hz mono 16-bit, cut or
    padded with silence to exactly ``seconds``."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y espeak-ng sox")
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        spoken, out = Path(tmp) / "spoken.wav", Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(spoken), text], check=True)
        subprocess.run(["sox", "-V1", str(spoken), "-r", str(rate), "-c", "1", "-b", "16",
                        str(out), "pad", "0", str(seconds), "trim", "0", str(seconds)],
                       check=True)
        return out.read_bytes()
