"""Why a device kind is absent, in words an operator can act on: a cause from a short
list (no package, wrong build, no driver, no device, hidden, not this platform, probe
failed) and what to install or change to get it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NO_PACKAGE = "no package"
WRONG_BUILD = "wrong build"
NO_DRIVER = "no driver"
NO_DEVICE = "no device"
HIDDEN = "hidden"
PLATFORM = "not this platform"
BROKEN = "probe failed"

HINTS: Mapping[str, Mapping[str, str]] = {
    "cuda": {
        NO_PACKAGE: "pip install torch (a CUDA build, from https://pytorch.org)",
        WRONG_BUILD: "install a CUDA build of torch (https://pytorch.org/get-started)",
        NO_DRIVER: "install the NVIDIA driver; `nvidia-smi` must list the GPU",
        NO_DEVICE: "check `nvidia-smi` and that the container is given the GPU "
                   "(docker --gpus all)",
        HIDDEN: "unset CUDA_VISIBLE_DEVICES or list the GPUs to use",
    },
    "rocm": {
        NO_PACKAGE: "pip install torch (a ROCm build, from https://pytorch.org)",
        WRONG_BUILD: "install a ROCm build of torch (https://pytorch.org/get-started)",
        NO_DRIVER: "install the amdgpu driver and ROCm; /dev/kfd must exist",
        NO_DEVICE: "check `rocm-smi` and that the container is given /dev/kfd and /dev/dri",
        HIDDEN: "unset HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES",
    },
    "mps": {
        NO_PACKAGE: "pip install torch",
        PLATFORM: "MPS exists only on Apple silicon under macOS 12.3 or newer",
        NO_DEVICE: "update macOS and torch; MPS needs Apple silicon",
    },
    "openvino": {
        NO_PACKAGE: "pip install 'hfserve[openvino]'",
        NO_DEVICE: "OpenVINO found no device; see `python -c \"import openvino as ov; "
                   "print(ov.Core().available_devices)\"`",
    },
    "qnn": {
        NO_PACKAGE: "pip install onnxruntime-qnn (Windows on Snapdragon)",
        WRONG_BUILD: "replace onnxruntime with onnxruntime-qnn (Windows on Snapdragon)",
        PLATFORM: "QNN needs a Qualcomm Snapdragon NPU",
    },
}


def absences(reasons: Mapping[str, str], causes: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per absent kind: its cause, the probe's own reason, and a hint."""
    rows = []
    for kind, reason in reasons.items():
        cause = causes.get(kind, BROKEN)
        rows.append({"kind": kind, "cause": cause, "reason": reason,
                     "hint": HINTS.get(kind, {}).get(cause)})
    return rows


def format_absences(rows: list[dict[str, Any]]) -> str:
    """The rows as indented text lines, for ``hfserve hardware``."""
    if not rows:
        return ""
    width = max(len(row["kind"]) for row in rows)
    lines = ["not available:"]
    for row in rows:
        lines.append(f"  {row['kind'].ljust(width)}  {row['cause']}: {row['reason']}")
        if row["hint"]:
            lines.append(f"  {' ' * width}  -> {row['hint']}")
    return "\n".join(lines)
