import pytest

from hfserve.hardware import probes
from hfserve.hardware.device import KINDS, OPENVINO_DEVICE, Device

GIB = 1 << 30


def test_probes_table_follows_priority() -> None:
    assert tuple(probes.PROBES) == KINDS
    assert all(probe.kind == kind for kind, probe in probes.PROBES.items())


# CUDA


def test_cuda_two_devices(host, fakes, two_gpus) -> None:
    host.modules["torch"] = fakes.torch(two_gpus)
    devices = probes.PROBES["cuda"]()
    assert [device.id for device in devices] == ["cuda:0", "cuda:1"]
    h100, t4 = devices
    assert h100.name == "NVIDIA H100 80GB HBM3"
    assert (h100.memory_total, h100.memory_free) == (80 * GIB, 70 * GIB)
    assert h100.dtypes == ("float32", "bfloat16", "float16")
    assert h100.details["compute_capability"] == "9.0"
    assert h100.details["runtime"] == "cuda 12.4"
    assert t4.dtypes == ("float32", "float16")
    assert t4.torch_device() == "cuda:1"
    assert probes.PROBES["cuda"].reason is None


def test_cuda_old_capability_has_no_float16(host, fakes) -> None:
    host.modules["torch"] = fakes.torch(
        [fakes.Gpu("GTX 750", (5, 0), 2 * GIB, GIB, False)]
    )
    (device,) = probes.find_cuda()
    assert device.dtypes == ("float32",)


@pytest.mark.parametrize("value", ["", "-1", " -1 ", "-1,0"])
def test_cuda_visible_devices_hiding_all_skips_torch(
    host, fakes, two_gpus, monkeypatch, value
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    torch = fakes.torch(two_gpus)
    host.modules["torch"] = torch
    result = probes.PROBES["cuda"].run()
    assert result.devices == ()
    assert "CUDA_VISIBLE_DEVICES" in result.reason
    assert "torch" not in host.imported
    assert torch.cuda.calls == []


def test_cuda_visible_devices_subset_is_left_to_torch(
    host, fakes, two_gpus, monkeypatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    host.modules["torch"] = fakes.torch(two_gpus[1:])
    devices = probes.find_cuda()
    assert [(device.id, device.name) for device in devices] == [("cuda:0", "Tesla T4")]


def test_cuda_unavailable_gives_reason(host, fakes) -> None:
    host.modules["torch"] = fakes.torch(cuda_available=False)
    result = probes.PROBES["cuda"].run()
    assert result.devices == ()
    assert result.reason == "torch.cuda.is_available() is False"


def test_cuda_probe_declines_rocm_torch(host, fakes, two_gpus) -> None:
    host.modules["torch"] = fakes.torch(two_gpus, hip="6.2")
    result = probes.PROBES["cuda"].run()
    assert result.devices == ()
    assert "ROCm" in result.reason


def test_torch_missing_is_reported(host) -> None:
    probe = probes.PROBES["cuda"]
    assert probe() == []
    assert probe.reason == "torch is not installed"


# ROCm


def test_rocm_devices_through_hip_torch(host, fakes) -> None:
    gpu = fakes.Gpu("AMD Instinct MI300X", (9, 4), 192 * GIB, 190 * GIB, True)
    host.modules["torch"] = fakes.torch([gpu], hip="6.2.41133")
    (device,) = probes.PROBES["rocm"]()
    assert device.kind == "rocm"
    assert device.id == "rocm:0"
    assert device.torch_device() == "cuda:0"
    assert device.backend == "torch"
    assert device.dtypes == ("float32", "bfloat16", "float16")
    assert device.details["runtime"] == "hip 6.2.41133"


def test_rocm_probe_declines_cuda_torch(host, fakes, two_gpus) -> None:
    host.modules["torch"] = fakes.torch(two_gpus)
    result = probes.PROBES["rocm"].run()
    assert result.devices == ()
    assert result.reason == "torch is not a ROCm build"


def test_hip_visible_devices_hides_rocm(host, fakes, monkeypatch) -> None:
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "-1")
    gpu = fakes.Gpu("AMD Instinct MI300X", (9, 4), 192 * GIB, 190 * GIB, True)
    host.modules["torch"] = fakes.torch([gpu], hip="6.2")
    result = probes.PROBES["rocm"].run()
    assert result.devices == ()
    assert "HIP_VISIBLE_DEVICES" in result.reason
    assert "torch" not in host.imported


# MPS


def test_mps_uses_unified_memory(host, fakes) -> None:
    host.arch = "arm64"
    host.modules["torch"] = fakes.torch(mps=True)
    host.modules["psutil"] = fakes.psutil(total=32 * GIB, available=20 * GIB)
    (device,) = probes.PROBES["mps"]()
    assert device.id == "mps"
    assert device.torch_device() == "mps"
    assert (device.memory_total, device.memory_free) == (32 * GIB, 20 * GIB)
    assert device.dtypes == ("float32", "bfloat16", "float16")
    assert device.details["unified_memory"] is True


def test_mps_without_bfloat16(host, fakes) -> None:
    host.modules["torch"] = fakes.torch(mps=True, mps_bf16=False)
    (device,) = probes.find_mps()
    assert device.dtypes == ("float32", "float16")


def test_mps_unavailable(host, fakes) -> None:
    host.modules["torch"] = fakes.torch(mps=False)
    result = probes.PROBES["mps"].run()
    assert result.devices == ()
    assert "mps" in result.reason


# OpenVINO


@pytest.fixture
def openvino_three(fakes):
    return fakes.openvino(
        {
            "CPU": {
                "FULL_DEVICE_NAME": "Intel(R) Xeon(R) Platinum 8480+",
                "OPTIMIZATION_CAPABILITIES": [
                    "FP32",
                    "BF16",
                    "INT8",
                    "BIN",
                    "EXPORT_IMPORT",
                ],
            },
            "GPU": {
                "FULL_DEVICE_NAME": "Intel(R) Arc(TM) A770 Graphics (dGPU)",
                "OPTIMIZATION_CAPABILITIES": ["FP32", "FP16", "INT8", "BIN"],
                "GPU_DEVICE_TOTAL_MEM_SIZE": 16 * GIB,
            },
            "NPU": {
                "FULL_DEVICE_NAME": "Intel(R) AI Boost",
                "OPTIMIZATION_CAPABILITIES": ["FP16", "INT8"],
            },
        }
    )


def test_openvino_cpu_gpu_npu(host, fakes, openvino_three) -> None:
    host.modules["openvino"] = openvino_three
    host.modules["psutil"] = fakes.psutil(total=64 * GIB, available=40 * GIB)
    devices = probes.PROBES["openvino"]()
    by_id = {device.id: device for device in devices}
    assert list(by_id) == ["openvino:CPU", "openvino:GPU", "openvino:NPU"]
    cpu, gpu, npu = devices
    assert cpu.dtypes == ("float32", "bfloat16", "int8")
    assert gpu.dtypes == ("float32", "float16", "int8")
    assert npu.dtypes == ("float16", "int8")
    assert gpu.name == "Intel(R) Arc(TM) A770 Graphics (dGPU)"
    assert (cpu.memory_total, cpu.memory_free) == (64 * GIB, 40 * GIB)
    assert (gpu.memory_total, gpu.memory_free) == (16 * GIB, None)
    assert (npu.memory_total, npu.memory_free) == (None, None)
    assert all(
        device.backend == "openvino" and device.torch_device() == "cpu"
        for device in devices
    )
    assert npu.details[OPENVINO_DEVICE] == "NPU"


def test_openvino_missing_properties_fall_back(host, fakes) -> None:
    host.modules["openvino"] = fakes.openvino({"GPU.1": {}})
    (device,) = probes.find_openvino()
    assert device.id == "openvino:GPU.1"
    assert device.name == "GPU.1"
    assert device.dtypes == ("float32",)
    assert device.memory_total is None


def test_openvino_not_installed(host) -> None:
    result = probes.PROBES["openvino"].run()
    assert result.devices == ()
    assert result.reason == "openvino is not installed"


# QNN


def test_qnn_present(host, fakes) -> None:
    host.modules["onnxruntime"] = fakes.onnxruntime(
        ["QNNExecutionProvider", "CPUExecutionProvider"]
    )
    (device,) = probes.PROBES["qnn"]()
    assert device.id == "qnn"
    assert device.backend == "onnxruntime"
    assert device.memory_free is None
    assert device.details["providers"] == [
        "QNNExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_qnn_absent_lists_providers(host, fakes) -> None:
    host.modules["onnxruntime"] = fakes.onnxruntime(["CPUExecutionProvider"])
    result = probes.PROBES["qnn"].run()
    assert result.devices == ()
    assert "QNNExecutionProvider" in result.reason
    assert "CPUExecutionProvider" in result.reason


# CPU


def test_cpu_probe_reads_cpuinfo_and_memory(host, fakes) -> None:
    host.modules["psutil"] = fakes.psutil(total=64 * GIB, available=48 * GIB)
    (device,) = probes.PROBES["cpu"]()
    assert device.id == "cpu"
    assert device.name == "Intel(R) Xeon(R) Platinum 8480+"
    assert device.dtypes == ("float32", "bfloat16")
    assert (device.memory_total, device.memory_free) == (64 * GIB, 48 * GIB)
    assert device.details["logical_cores"] == 8
    assert device.details["physical_cores"] == 4
    assert device.details["usable_cores"] == 6
    assert "amx_bf16" in device.details["isa"]


def test_cpu_probe_on_arm(host, fakes) -> None:
    host.arch = "aarch64"
    host.cpuinfo = fakes.arm_cpuinfo
    (device,) = probes.find_cpu()
    assert device.details["arch"] == "aarch64"
    assert "neon" in device.details["isa"]
    assert "bfloat16" in device.dtypes


def test_cpu_probe_without_psutil_reports(host) -> None:
    del host.modules["psutil"]
    result = probes.PROBES["cpu"].run()
    assert result.devices == ()
    assert result.reason == "psutil is not installed"


# The wrapper


def test_probe_turns_errors_into_reasons() -> None:
    def broken() -> list[Device]:
        raise RuntimeError("driver exploded")

    probe = probes.Probe("cuda", broken)
    assert probe() == []
    assert probe.reason == "probe failed: RuntimeError: driver exploded"


def test_probe_with_no_devices_says_so() -> None:
    result = probes.Probe("qnn", list).run()
    assert result == probes.ProbeResult("qnn", (), "no devices found", "no device")


@pytest.mark.parametrize(("driver", "cause"), [(True, "no device"), (False, "no driver")])
def test_cuda_unavailable_tells_a_missing_driver_from_a_missing_device(
    host, fakes, monkeypatch, driver, cause
) -> None:
    monkeypatch.setattr(probes.system, "path_exists", lambda path: driver)
    host.modules["torch"] = fakes.torch(cuda_available=False)
    assert probes.PROBES["cuda"].run().cause == cause


def test_cpu_only_torch_is_a_wrong_build(host, fakes) -> None:
    torch = fakes.torch(cuda_available=False)
    torch.version.cuda = None
    host.modules["torch"] = torch
    result = probes.PROBES["cuda"].run()
    assert (result.reason, result.cause) == ("torch is a CPU-only build", "wrong build")


def test_missing_package_and_hidden_devices_have_their_causes(host, monkeypatch) -> None:
    assert probes.PROBES["openvino"].run().cause == "no package"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probes.PROBES["cuda"].run().cause == "hidden"


@pytest.mark.parametrize(("platform", "cause"), [("darwin", "no device"),
                                                 ("linux", "not this platform")])
def test_mps_absence_depends_on_the_platform(host, fakes, monkeypatch, platform,
                                             cause) -> None:
    monkeypatch.setattr(probes.system, "platform_name", lambda: platform)
    host.modules["torch"] = fakes.torch(mps=False)
    assert probes.PROBES["mps"].run().cause == cause


def test_minimal_cpu(host) -> None:
    device = probes.minimal_cpu()
    assert device.id == "cpu"
    assert device.details["minimal"] is True
    assert device.name == "x86_64"
