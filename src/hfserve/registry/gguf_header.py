"""Check a GGUF file before transformers parses it: the magic, a version the parsers know,
tensor and metadata counts the file could hold, metadata that ends inside the file, and
every tensor's bytes inside it (a truncated download). A walk over the metadata with
``struct``: the ``gguf`` package's reader builds an array per field and takes seconds on
a 49,152-token vocabulary, this takes milliseconds."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from hfserve.errors import MalformedModel

MAGIC = b"GGUF"
VERSIONS = (2, 3)               # what transformers' GGUF loader (through gguf) reads
MAX_COUNT = 1 << 24             # tensors or metadata entries; real files hold hundreds
MAX_DIMS = 4                    # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types: fixed sizes in bytes; 8 is a string, 9 an array.
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Truncated(Exception):
    pass


class _Cursor:
    def __init__(self, data: Any) -> None:
        self.data, self.pos, self.size = data, 0, len(data)

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated
        self.pos = start + n
        return start

    def unpack(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.take(struct.calcsize(fmt)))
        return values[0] if len(values) == 1 else values

    def string(self) -> bytes:
        n = self.unpack("<Q")
        start = self.take(n)
        return bytes(self.data[start:start + n])

    def value(self, kind: int) -> Any:
        if kind in _SCALAR:
            return self.data[self.take(_SCALAR[kind]):self.pos]
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise ValueError(f"unknown metadata value type {kind}")
        item, count = self.unpack("<IQ")
        if item in _SCALAR:
            self.take(count * _SCALAR[item])
        else:
            for _ in range(count):
                self.value(item)
        return None


def _fail(path: Path, reason: str) -> MalformedModel:
    return MalformedModel(f"malformed GGUF file {path.name!r}: {reason}", param="model")


def _tensor_bytes(kind: int, dims: tuple[int, ...]) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    count = 1
    for d in dims:
        count *= d
    return count // block * size


def _walk(path: Path, data: Any) -> None:
    cur = _Cursor(data)
    if bytes(data[:4]) != MAGIC:
        raise _fail(path, f"magic {bytes(data[:4])!r} is not {MAGIC!r}")
    try:
        cur.take(len(MAGIC))
        version, tensors, entries = cur.unpack("<IQQ")
    except _Truncated:
        raise _fail(path, f"{cur.size} bytes, shorter than the GGUF header") from None
    if version not in VERSIONS:
        raise _fail(path, f"version {version} is not one of {VERSIONS}")
    # Each metadata entry takes 13 bytes at least, each tensor entry 24.
    if tensors > MAX_COUNT or entries > MAX_COUNT or 13 * entries + 24 * tensors > cur.size:
        raise _fail(path, f"{tensors} tensors and {entries} metadata entries cannot be "
                          f"held in {cur.size} bytes")
    alignment = DEFAULT_ALIGNMENT
    try:
        for _ in range(entries):
            key = cur.string()
            kind = cur.unpack("<I")
            start = cur.pos
            cur.value(kind)
            if key == b"general.alignment" and kind == 4:
                alignment = struct.unpack_from("<I", data, start)[0] or DEFAULT_ALIGNMENT
        infos = []
        for _ in range(tensors):
            name = cur.string()[:80].decode("utf-8", "replace")
            n_dims = cur.unpack("<I")
            if n_dims > MAX_DIMS:
                raise _fail(path, f"tensor {name!r} has {n_dims} dimensions")
            dims = cur.unpack(f"<{n_dims}Q") if n_dims else ()
            kind, offset = cur.unpack("<IQ")
            infos.append((name, (dims,) if isinstance(dims, int) else dims, kind, offset))
    except _Truncated:
        raise _fail(path, f"the file ends inside its metadata ({cur.size} bytes: "
                          "truncated?)") from None
    except ValueError as exc:
        raise _fail(path, str(exc)) from None
    data_start = -(-cur.pos // alignment) * alignment
    for name, dims, kind, offset in infos:
        try:
            end = data_start + offset + _tensor_bytes(kind, dims)
        except (KeyError, ValueError):
            raise _fail(path, f"tensor {name!r} has unknown type {kind}") from None
        if end > cur.size:
            raise _fail(path, f"tensor {name!r} ends at byte {end}, past the end of "
                              f"the file ({cur.size} bytes: truncated?)")


def check_gguf(path: Path) -> None:
    """Raise ``MalformedModel`` with a one-line reason unless ``path`` is a whole GGUF."""
    path = Path(path)
    with path.open("rb") as f:
        if path.stat().st_size == 0:
            raise _fail(path, "the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk(path, data)
