"""Images for the vision tests: random PNGs, data URLs, a PNG header claiming a huge canvas,
and transformers' pipelines on a test model folder with its PIL image processor."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np


def png_bytes(seed: int, size: int | tuple[int, int] = 40) -> bytes:
    """A PNG of random pixels, ``size`` square or (width, height)."""
    from PIL import Image

    width, height = (size, size) if isinstance(size, int) else size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def truncated(data: bytes) -> str:
    """A data URL of the first half of a PNG."""
    return data_url(data[: len(data) // 2])


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and holds almost none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def decoded(blobs: list[bytes]) -> list:
    """Each PNG as the RGB ``PIL.Image`` a pipeline is given."""
    from PIL import Image

    return [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]


def pipe(folder, task: str):
    """transformers' ``pipeline(task)`` on ``folder``, with the image processor the server
    loads (its PIL class: this environment has no torchvision)."""
    from transformers import pipeline

    from hfserve.skills.image_processing import image_processor

    class Folder:
        path = folder

    return pipeline(task, model=str(folder), image_processor=image_processor(Folder))
