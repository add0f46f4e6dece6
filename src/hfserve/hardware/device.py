"""One compute device the server can place a model on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS: tuple[str, ...] = ("cuda", "rocm", "mps", "openvino", "qnn", "cpu")
"""Device kinds, most preferred first."""

BACKENDS: Mapping[str, str] = {
    "cuda": "torch",
    "rocm": "torch",
    "mps": "torch",
    "openvino": "openvino",
    "qnn": "onnxruntime",
    "cpu": "torch",
}
"""The runtime that executes models on each kind."""

OPENVINO_DEVICE = "openvino_device"
"""Key in ``Device.details`` naming the OpenVINO target ("CPU", "GPU.0", "NPU")."""


def _ordinal(device: Device) -> str | None:
    return None if device.index is None else str(device.index)


def _openvino_target(device: Device) -> str | None:
    return device.details.get(OPENVINO_DEVICE)


def _no_selector(device: Device) -> str | None:
    return None


_SELECTORS: Mapping[str, Callable[[Device], str | None]] = {
    "cuda": _ordinal,
    "rocm": _ordinal,
    "mps": _no_selector,
    "openvino": _openvino_target,
    "qnn": _no_selector,
    "cpu": _no_selector,
}

_TORCH_TYPES: Mapping[str, str] = {
    "cuda": "cuda",
    "rocm": "cuda",  # ROCm builds of torch address AMD GPUs as "cuda"
    "mps": "mps",
    "openvino": "cpu",
    "qnn": "cpu",
    "cpu": "cpu",
}
_INDEXED_TORCH_KINDS = frozenset({"cuda", "rocm"})


@dataclass(frozen=True)
class Device:
    """A probed device: what it is, how much memory it has, which dtypes it runs.

    ``memory_total`` and ``memory_free`` are bytes, ``None`` when unknown. ``dtypes``
    lists what was found to work on this device, not what its kind usually supports.
    ``backend`` defaults from ``kind``. ``details`` holds kind-specific facts (compute
    capability, ISA flags, core counts, the OpenVINO target); equality ignores it.
    """

    kind: str
    index: int | None
    name: str
    memory_total: int | None = None
    memory_free: int | None = None
    dtypes: tuple[str, ...] = ("float32",)
    backend: str = ""
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ValueError(
                f"unknown device kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            )
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        if not self.backend:
            object.__setattr__(self, "backend", BACKENDS[self.kind])

    @property
    def id(self) -> str:
        """Stable name: "cuda:0", "rocm:1", "mps", "openvino:GPU", "qnn", "cpu"."""
        selector = _SELECTORS[self.kind](self)
        return self.kind if selector is None else f"{self.kind}:{selector}"

    def torch_device(self) -> str:
        """The torch device string that tensors for this device go to."""
        torch_type = _TORCH_TYPES[self.kind]
        if self.kind in _INDEXED_TORCH_KINDS and self.index is not None:
            return f"{torch_type}:{self.index}"
        return torch_type

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the device."""
        return {
            "id": self.id,
            "kind": self.kind,
            "index": self.index,
            "name": self.name,
            "memory_total": self.memory_total,
            "memory_free": self.memory_free,
            "dtypes": list(self.dtypes),
            "backend": self.backend,
            "details": _plain(self.details),
        }


def _plain(value: Any) -> Any:
    """Turn tuples and mappings nested in ``details`` into lists and dicts."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_plain(item) for item in items]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
