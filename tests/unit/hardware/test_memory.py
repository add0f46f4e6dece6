from hfserve.hardware import memory, probes
from hfserve.hardware.device import KINDS, OPENVINO_DEVICE, Device

GIB = 1 << 30


def test_every_kind_has_a_reader() -> None:
    assert set(memory.MEMORY_READERS) == set(KINDS)


def test_system_memory_reads_psutil(host, fakes) -> None:
    host.modules["psutil"] = fakes.psutil(total=16 * GIB, available=3 * GIB)
    assert memory.system_memory() == (16 * GIB, 3 * GIB)


def test_read_memory_cuda_rereads_free(host, fakes, two_gpus) -> None:
    torch = fakes.torch(two_gpus)
    host.modules["torch"] = torch
    device = probes.find_cuda()[1]
    torch.cuda.gpus[1].free = 3 * GIB
    assert memory.read_memory(device).memory_free == 3 * GIB
    assert device.memory_free == 15 * GIB


def test_read_memory_cpu_and_openvino_cpu_use_psutil(host, fakes) -> None:
    host.modules["psutil"] = fakes.psutil(total=64 * GIB, available=10 * GIB)
    cpu = Device(kind="cpu", index=None, name="x", memory_total=1, memory_free=1)
    ov_cpu = Device(
        kind="openvino", index=None, name="x", details={OPENVINO_DEVICE: "CPU"}
    )
    assert memory.read_memory(cpu).memory_free == 10 * GIB
    assert memory.read_memory(ov_cpu).memory_total == 64 * GIB


def test_read_memory_keeps_unknowable_figures(host) -> None:
    ov_gpu = Device(
        kind="openvino",
        index=None,
        name="x",
        memory_total=5,
        details={OPENVINO_DEVICE: "GPU"},
    )
    qnn = Device(kind="qnn", index=None, name="x")
    assert memory.read_memory(ov_gpu) == ov_gpu
    assert memory.read_memory(qnn).memory_free is None
    assert host.imported == []
