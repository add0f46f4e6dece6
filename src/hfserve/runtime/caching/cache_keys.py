"""Keys of the response cache: what makes two encoder results the same. A key is a sha256
over the model's name and revision (its files' identity and where it runs), the task, the
options (sorted JSON) and one input; an input that is not plain data (text, token ids,
numbers, lists and dicts of them, bytes) has no key and is never cached."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hfserve.backends.placement import Placement
from hfserve.registry.identity import source_identity
from hfserve.types import ModelSpec, Task


class Uncacheable(TypeError):
    """An input or option whose value has no stable text form."""


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    raise Uncacheable(type(value).__name__)


def canonical(value: Any) -> str:
    """Sorted, compact JSON; raises ``Uncacheable`` for what JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain,
                      allow_nan=True)


def revision(spec: ModelSpec, placement: Placement) -> str | None:
    """The identity of what a loaded model computes with: its source files (names, sizes,
    modification times), and the backend, device and dtype it runs on (their results differ
    in the last digits). None when the files cannot be read."""
    try:
        files = source_identity(spec)
    except OSError:
        return None
    text = canonical([str(spec.path), spec.gguf_file, files, placement.backend,
                      placement.device, placement.dtype])
    return hashlib.sha256(text.encode()).hexdigest()


def prefix(model: str, revision_: str, task: Task, options: dict[str, Any]) -> str | None:
    """What every key of one request shares, or None when an option has no text form."""
    try:
        return canonical([model, revision_, task.value, options])
    except (Uncacheable, ValueError):
        return None


def item_key(shared: str, item: Any) -> str | None:
    """The key of one input under a request's shared part, or None (not cacheable)."""
    try:
        text = canonical(item)
    except (Uncacheable, ValueError):
        return None
    digest = hashlib.sha256(shared.encode())
    digest.update(b"\0")
    digest.update(text.encode())
    return digest.hexdigest()
