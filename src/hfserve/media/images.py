"""Images from request inputs: a data URL, bare base64, or an http(s) URL on the configured
allowlist, decoded with Pillow within the model's limits. Never a local path or ``file://``:
a request must not make the server read its own disk. Called from a skill's ``prepare``,
so it runs off the event loop."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hfserve.errors import InvalidRequest


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    url_hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, options: dict[str, Any]) -> ImageLimits:
        """The limits a model's settings (``ModelConfig``) give, defaults where unset."""
        base = cls()
        return cls(int(options.get("max_image_bytes") or base.max_bytes),
                   int(options.get("max_image_pixels") or base.max_pixels),
                   tuple(h.lower() for h in options.get("image_url_hosts") or ()))


def image_source(item: Any) -> str | None:
    """The image reference of an input: a string, or OpenAI's ``{"url": ...}`` /
    ``{"image_url": {"url": ...}}`` forms; None where the input holds none."""
    if isinstance(item, dict):
        inner = item.get("image_url", item)
        item = inner.get("url") if isinstance(inner, dict) else inner
    return item if isinstance(item, str) and item else None


def _b64(data: str, limits: ImageLimits, param: str) -> bytes:
    if len(data) * 3 // 4 > limits.max_bytes:
        raise InvalidRequest(f"image is larger than this model's limit of {limits.max_bytes} "
                             "bytes", param=param)
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image is neither a data URL, base64 data nor an allowed "
                             "http(s) URL", param=param) from None


def _fetch(url: str, limits: ImageLimits, param: str) -> bytes:
    import httpx

    host = (urlsplit(url).hostname or "").lower()
    if host not in limits.url_hosts:
        raise InvalidRequest(f"image URLs from {host or 'this host'!r} are not allowed: send "
                             "the image as a data URL or base64, or add the host to the "
                             "model's image_url_hosts", param=param, code="url_not_allowed")
    body = bytearray()
    try:
        # Redirects are not followed: they could lead off the allowlist.
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=False) as response:
            if response.status_code != 200:
                raise InvalidRequest(f"fetching the image URL answered HTTP "
                                     f"{response.status_code}", param=param)
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limits.max_bytes:
                    raise InvalidRequest(f"image is larger than this model's limit of "
                                         f"{limits.max_bytes} bytes", param=param)
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"could not fetch the image URL: {exc}", param=param) from None
    return bytes(body)


def image_bytes(source: str, limits: ImageLimits, param: str = "input") -> bytes:
    """The encoded bytes of a data URL, bare base64 data, or an allowed http(s) URL."""
    scheme = source[:16].split(":", 1)[0].lower() if ":" in source[:16] else ""
    if scheme == "data":
        header, _, data = source.partition(",")
        if not header.lower().endswith(";base64"):
            raise InvalidRequest("image data URLs must be base64 (data:image/...;base64,...)",
                                 param=param)
        return _b64(data, limits, param)
    if scheme in ("http", "https"):
        return _fetch(source, limits, param)
    if scheme:
        raise InvalidRequest(f"{scheme}: image URLs are not taken; send a data URL or "
                             "base64", param=param, code="url_not_allowed")
    return _b64(source, limits, param)


def decode_image(data: bytes, limits: ImageLimits, param: str = "input") -> Any:
    """An RGB ``PIL.Image`` from encoded bytes, as transformers' ``load_image`` makes it
    (EXIF orientation applied). The pixel count is checked from the header, before any pixel
    is decoded, so a small file claiming a huge canvas costs nothing."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below twice its limit: make that a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise InvalidRequest(f"image is {width}x{height} pixels, more than this "
                                     f"model's limit of {limits.max_pixels}", param=param)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidRequest(f"image has more pixels than this model's limit of "
                             f"{limits.max_pixels}", param=param) from None
    except UnidentifiedImageError:
        raise InvalidRequest("input is not an image Pillow can read (PNG, JPEG, WebP, GIF, "
                             "BMP, TIFF...)", param=param) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(f"image is truncated or corrupt: {exc}", param=param) from None
    return ImageOps.exif_transpose(image).convert("RGB")


def load_image(item: Any, limits: ImageLimits, param: str = "input") -> Any:
    """An input (see ``image_source``) as an RGB ``PIL.Image``; a clear 400 otherwise."""
    source = image_source(item)
    if source is None:
        raise InvalidRequest("each input must be an image: a data URL, base64 data or an "
                             "allowed http(s) URL", param=param)
    return decode_image(image_bytes(source, limits, param), limits, param)
