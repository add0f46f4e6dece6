"""Check a ``.safetensors`` file's header before any loader maps it: a header length that
points past the file, a header that is not JSON, or tensors whose bytes lie outside the
file or disagree with their dtype and shape would otherwise surface as a crash or an
opaque error deep inside the load."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from hfserve.errors import MalformedModel

# Far above any real header (a few MiB for thousands of tensors), far below what would
# exhaust memory when read.
MAX_HEADER_BYTES = 100 * 2**20

# Bits per element of the dtypes safetensors names; an unknown one is checked for bounds
# only, so that a newer format still loads.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


def _fail(path: Path, reason: str) -> MalformedModel:
    return MalformedModel(f"malformed safetensors file {path.name!r}: {reason}",
                          param="model")


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed header and the offset where tensor data starts."""
    size = path.stat().st_size
    if size < 8:
        raise _fail(path, f"{size} bytes, shorter than the 8-byte header length")
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > MAX_HEADER_BYTES:
            raise _fail(path, f"header length {length} is over the {MAX_HEADER_BYTES}-byte cap")
        if 8 + length > size:
            raise _fail(path, f"header length {length} runs past the end of the file "
                              f"({size} bytes)")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(path, f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    return header, 8 + length


def _tensor_bytes(name: str, entry: Any, path: Path) -> tuple[int, int, int | None]:
    """(begin, end, expected size or None) of one tensor entry, its form checked."""
    if not isinstance(entry, dict):
        raise _fail(path, f"tensor {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _fail(path, f"tensor {name!r} has no valid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(
            isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise _fail(path, f"tensor {name!r} has no valid data_offsets")
    bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
    expected = None if bits is None else math.ceil(math.prod(shape) * bits / 8)
    return offsets[0], offsets[1], expected


def check_safetensors(path: Path) -> None:
    """Raise ``MalformedModel`` with a one-line reason unless ``path``'s header is sound."""
    path = Path(path)
    header, data_start = read_header(path)
    data_size = path.stat().st_size - data_start
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end, expected = _tensor_bytes(name, entry, path)
        if end > data_size:
            raise _fail(path, f"tensor {name!r} ends at byte {end} of the data, past its "
                              f"end ({data_size} bytes)")
        if expected is not None and end - begin != expected:
            raise _fail(path, f"tensor {name!r} takes {end - begin} bytes, its "
                              f"{entry['dtype']} x {entry['shape']} needs {expected}")
