"""Stand-ins for torch, psutil, openvino, onnxruntime and the host, patched into the probes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from hfserve.hardware import system

GIB = 1 << 30
VISIBILITY_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
)

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse
"""

OLD_X86_CPUINFO = """\
processor\t: 0
model name\t: Intel(R) Core(TM) i7-6700 CPU
flags\t\t: fpu sse sse2 sse4_2 avx avx2 fma f16c
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull fphp asimdhp asimddp sve sve2 i8mm bf16
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


@dataclass
class Gpu:
    name: str
    capability: tuple[int, int]
    total: int
    free: int
    bf16: bool


class FakeCuda:
    """The parts of torch.cuda the probes call."""

    def __init__(self, gpus: list[Gpu], available: bool) -> None:
        self.gpus = gpus
        self.available = available
        self.current = 0
        self.calls: list[str] = []

    def is_available(self) -> bool:
        self.calls.append("is_available")
        return self.available

    def device_count(self) -> int:
        return len(self.gpus)

    def get_device_name(self, index: int) -> str:
        return self.gpus[index].name

    def get_device_capability(self, index: int) -> tuple[int, int]:
        return self.gpus[index].capability

    def mem_get_info(self, index: int) -> tuple[int, int]:
        return self.gpus[index].free, self.gpus[index].total

    @contextmanager
    def device(self, index: int) -> Iterator[None]:
        previous, self.current = self.current, index
        try:
            yield
        finally:
            self.current = previous

    def is_bf16_supported(self, including_emulation: bool = True) -> bool:
        return self.gpus[self.current].bf16


def make_torch(
    gpus: list[Gpu] | None = None,
    *,
    hip: str | None = None,
    cuda_available: bool | None = None,
    mps: bool = False,
    mps_bf16: bool = True,
) -> SimpleNamespace:
    gpus = gpus or []

    def ones(*shape: int, dtype: Any = None, device: str = "cpu") -> list[int]:
        if dtype == "bfloat16" and not mps_bf16:
            raise TypeError("MPS BFloat16 is only supported on macOS 14 or newer")
        return [1] * shape[0]

    return SimpleNamespace(
        version=SimpleNamespace(hip=hip, cuda=None if hip else "12.4"),
        cuda=FakeCuda(gpus, bool(gpus) if cuda_available is None else cuda_available),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)),
        bfloat16="bfloat16",
        ones=ones,
    )


def make_psutil(total: int = 64 * GIB, available: int = 48 * GIB) -> SimpleNamespace:
    return SimpleNamespace(
        virtual_memory=lambda: SimpleNamespace(total=total, available=available),
        cpu_count=lambda logical=True: 8 if logical else 4,
    )


def make_openvino(properties: dict[str, dict[str, Any]]) -> SimpleNamespace:
    """An openvino module whose Core reports ``properties`` (target -> property -> value)."""

    class Core:
        def __init__(self) -> None:
            self.available_devices = list(properties)

        def get_property(self, target: str, name: str) -> Any:
            if name not in properties[target]:
                raise RuntimeError(f"Unsupported property {name} by {target} plugin")
            return properties[target][name]

    return SimpleNamespace(Core=Core)


def make_onnxruntime(providers: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        get_available_providers=lambda: list(providers), __version__="1.20.0"
    )


@dataclass
class Host:
    """What the probes see: importable modules, /proc/cpuinfo text, the architecture."""

    modules: dict[str, Any] = field(default_factory=dict)
    cpuinfo: str = X86_CPUINFO
    arch: str = "x86_64"
    imported: list[str] = field(default_factory=list)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    fake = Host(modules={"psutil": make_psutil()})

    def load_module(name: str) -> Any:
        fake.imported.append(name)
        if name not in fake.modules:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return fake.modules[name]

    monkeypatch.setattr(system, "load_module", load_module)
    monkeypatch.setattr(system, "read_cpuinfo", lambda: fake.cpuinfo)
    monkeypatch.setattr(system, "machine", lambda: fake.arch)
    monkeypatch.setattr(system, "processor", lambda: "")
    monkeypatch.setattr(system, "logical_cores", lambda: 8)
    monkeypatch.setattr(system, "usable_cores", lambda: 6)
    for variable in VISIBILITY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return fake


@pytest.fixture
def two_gpus() -> list[Gpu]:
    return [
        Gpu("NVIDIA H100 80GB HBM3", (9, 0), 80 * GIB, 70 * GIB, True),
        Gpu("Tesla T4", (7, 5), 16 * GIB, 15 * GIB, False),
    ]


@pytest.fixture
def fakes() -> SimpleNamespace:
    """Builders for the stand-in modules and sample /proc/cpuinfo texts."""
    return SimpleNamespace(
        Gpu=Gpu,
        torch=make_torch,
        psutil=make_psutil,
        openvino=make_openvino,
        onnxruntime=make_onnxruntime,
        x86_cpuinfo=X86_CPUINFO,
        old_x86_cpuinfo=OLD_X86_CPUINFO,
        arm_cpuinfo=ARM_CPUINFO,
    )
