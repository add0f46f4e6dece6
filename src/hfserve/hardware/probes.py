"""One probe per device kind, each finding the devices of that kind on this machine.

Each probe imports its library only when called and reaches the host through
``hardware.system``. A probe that finds nothing returns an empty list and keeps the
reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hfserve.hardware import cpuinfo, system
from hfserve.hardware.absence import (
    BROKEN,
    HIDDEN,
    NO_DEVICE,
    NO_DRIVER,
    NO_PACKAGE,
    PLATFORM,
    WRONG_BUILD,
)
from hfserve.hardware.device import OPENVINO_DEVICE, Device
from hfserve.hardware.memory import Memory, system_memory
from hfserve.hardware.quota import cpu_quota

log = logging.getLogger(__name__)

OPENVINO_DTYPES: Mapping[str, str] = {
    "FP32": "float32",
    "BF16": "bfloat16",
    "FP16": "float16",
    "INT8": "int8",
}
"""OpenVINO OPTIMIZATION_CAPABILITIES entries and the dtype each one means."""

QNN_PROVIDER = "QNNExecutionProvider"
QNN_DTYPES: tuple[str, ...] = ("float32", "float16", "int8")
FP16_CAPABILITY = (5, 3)


class Unavailable(Exception):
    """A probe found no device of its kind; the message says why, ``cause`` which of
    ``hardware.absence``'s causes it is."""

    def __init__(self, message: str, cause: str = NO_DEVICE) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class ProbeResult:
    kind: str
    devices: tuple[Device, ...]
    reason: str | None
    cause: str | None = None


class Probe:
    """A device finder wrapped so that any failure yields no devices and a reason."""

    def __init__(self, kind: str, find: Callable[[], list[Device]]) -> None:
        self.kind = kind
        self.find = find
        self.reason: str | None = None

    def run(self) -> ProbeResult:
        try:
            devices = tuple(self.find())
        except Unavailable as exc:
            return ProbeResult(self.kind, (), str(exc), exc.cause)
        except ImportError as exc:
            return ProbeResult(self.kind, (), f"{exc.name or exc} is not installed",
                               NO_PACKAGE)
        except Exception as exc:  # a broken driver must not stop detection
            log.warning("%s probe failed", self.kind, exc_info=True)
            return ProbeResult(
                self.kind, (), f"probe failed: {type(exc).__name__}: {exc}", BROKEN
            )
        if devices:
            return ProbeResult(self.kind, devices, None)
        return ProbeResult(self.kind, devices, "no devices found", NO_DEVICE)

    def __call__(self) -> list[Device]:
        result = self.run()
        self.reason = result.reason
        return list(result.devices)

    def __repr__(self) -> str:
        return f"Probe({self.kind!r})"


def _check_visible(variables: tuple[str, ...]) -> None:
    """Raise when a visibility variable hides every device ("" or "-1")."""
    for variable in variables:
        value = system.env(variable)
        first = None if value is None else value.split(",")[0].strip()
        if first is not None and (first == "" or first.startswith("-")):
            raise Unavailable(f"{variable}={value!r} hides every device", HIDDEN)


_BUILD_MISMATCH: Mapping[str, str] = {
    "cuda": "torch is a ROCm build",
    "rocm": "torch is not a ROCm build",
}
_DRIVER_FILES: Mapping[str, str] = {
    "cuda": "/proc/driver/nvidia/version",
    "rocm": "/dev/kfd",
}


def _torch_gpus(kind: str) -> list[Device]:
    """CUDA and ROCm devices, both seen through torch.cuda."""
    torch = system.load_module("torch")
    is_rocm = torch.version.hip is not None
    if is_rocm != (kind == "rocm"):
        raise Unavailable(_BUILD_MISMATCH[kind], WRONG_BUILD)
    if not is_rocm and getattr(torch.version, "cuda", None) is None:
        raise Unavailable("torch is a CPU-only build", WRONG_BUILD)
    if not torch.cuda.is_available():
        driver = system.path_exists(_DRIVER_FILES[kind])
        raise Unavailable("torch.cuda.is_available() is False",
                          NO_DEVICE if driver else NO_DRIVER)
    runtime = torch.version.hip if is_rocm else torch.version.cuda
    devices = []
    for index in range(torch.cuda.device_count()):
        capability = tuple(torch.cuda.get_device_capability(index))
        free, total = torch.cuda.mem_get_info(index)
        with torch.cuda.device(index):
            bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        dtypes = ("float32",) + (("bfloat16",) if bf16 else ())
        dtypes += ("float16",) if capability >= FP16_CAPABILITY else ()
        devices.append(
            Device(
                kind=kind,
                index=index,
                name=str(torch.cuda.get_device_name(index)),
                memory_total=int(total),
                memory_free=int(free),
                dtypes=dtypes,
                details={
                    "compute_capability": ".".join(str(part) for part in capability),
                    "runtime": f"{'hip' if is_rocm else 'cuda'} {runtime}",
                },
            )
        )
    return devices


def find_cuda() -> list[Device]:
    _check_visible(("CUDA_VISIBLE_DEVICES",))
    return _torch_gpus("cuda")


def find_rocm() -> list[Device]:
    _check_visible(("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"))
    return _torch_gpus("rocm")


def find_mps() -> list[Device]:
    torch = system.load_module("torch")
    if not torch.backends.mps.is_available():
        raise Unavailable("torch.backends.mps.is_available() is False",
                          NO_DEVICE if system.platform_name() == "darwin" else PLATFORM)
    try:
        torch.ones(1, dtype=torch.bfloat16, device="mps")
        bf16 = True
    except (RuntimeError, TypeError):
        bf16 = False
    total, free = system_memory()
    dtypes = ("float32", "bfloat16", "float16") if bf16 else ("float32", "float16")
    return [
        Device(
            kind="mps",
            index=None,
            name=f"Apple {system.processor() or system.machine()} GPU",
            memory_total=total,
            memory_free=free,
            dtypes=dtypes,
            details={"unified_memory": True},
        )
    ]


def _openvino_property(core: Any, target: str, name: str) -> Any:
    try:
        return core.get_property(target, name)
    except RuntimeError:  # raised for a property the target's plugin does not have
        return None


def _openvino_gpu_memory(core: Any, target: str) -> Memory:
    total = _openvino_property(core, target, "GPU_DEVICE_TOTAL_MEM_SIZE")
    return (int(total) if total is not None else None), None


def _no_memory(core: Any, target: str) -> Memory:
    return None, None


_OPENVINO_MEMORY: Mapping[str, Callable[[Any, str], Memory]] = {
    "CPU": lambda core, target: system_memory(),
    "GPU": _openvino_gpu_memory,
}


def find_openvino() -> list[Device]:
    openvino = system.load_module("openvino")
    core = openvino.Core()
    devices = []
    for target in core.available_devices:
        family = target.split(".")[0]
        capabilities = tuple(
            _openvino_property(core, target, "OPTIMIZATION_CAPABILITIES") or ()
        )
        dtypes = tuple(
            dict.fromkeys(
                OPENVINO_DTYPES[c] for c in capabilities if c in OPENVINO_DTYPES
            )
        )
        total, free = _OPENVINO_MEMORY.get(family, _no_memory)(core, target)
        devices.append(
            Device(
                kind="openvino",
                index=None,
                name=str(
                    _openvino_property(core, target, "FULL_DEVICE_NAME") or target
                ),
                memory_total=total,
                memory_free=free,
                dtypes=dtypes or ("float32",),
                details={OPENVINO_DEVICE: target, "capabilities": list(capabilities)},
            )
        )
    return devices


def find_qnn() -> list[Device]:
    onnxruntime = system.load_module("onnxruntime")
    providers = list(onnxruntime.get_available_providers())
    if QNN_PROVIDER not in providers:
        raise Unavailable(
            f"onnxruntime has no {QNN_PROVIDER} (providers: {', '.join(providers)})",
            WRONG_BUILD,
        )
    return [
        Device(
            kind="qnn",
            index=None,
            name="Qualcomm NPU (QNN)",
            dtypes=QNN_DTYPES,
            details={
                "providers": providers,
                "onnxruntime": str(onnxruntime.__version__),
            },
        )
    ]


def find_cpu() -> list[Device]:
    features = cpuinfo.parse(
        system.read_cpuinfo(), system.machine(), system.processor()
    )
    psutil = system.load_module("psutil")
    total, free = system_memory()
    return [
        Device(
            kind="cpu",
            index=None,
            name=features.name,
            memory_total=total,
            memory_free=free,
            dtypes=features.dtypes,
            details={
                "arch": features.arch,
                "isa": list(features.isa),
                "logical_cores": system.logical_cores(),
                "physical_cores": psutil.cpu_count(logical=False),
                "usable_cores": system.usable_cores(),
                "cpu_quota": cpu_quota(),   # what a model's threads default to
            },
        )
    ]


def minimal_cpu() -> Device:
    """The CPU as known without any probe library; used when the CPU probe fails."""
    return Device(
        kind="cpu",
        index=None,
        name=system.machine() or "cpu",
        details={"minimal": True},
    )


PROBES: dict[str, Probe] = {
    "cuda": Probe("cuda", find_cuda),
    "rocm": Probe("rocm", find_rocm),
    "mps": Probe("mps", find_mps),
    "openvino": Probe("openvino", find_openvino),
    "qnn": Probe("qnn", find_qnn),
    "cpu": Probe("cpu", find_cpu),
}
"""Every probe, in ``KINDS`` priority order."""
