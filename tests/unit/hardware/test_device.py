import json

import pytest

from hfserve.hardware.device import BACKENDS, KINDS, OPENVINO_DEVICE, Device


def make(kind: str, index: int | None = None, **details: object) -> Device:
    return Device(kind=kind, index=index, name=f"{kind} device", details=details)


@pytest.mark.parametrize(
    ("device", "expected_id", "expected_torch"),
    [
        (make("cuda", 0), "cuda:0", "cuda:0"),
        (make("cuda", 1), "cuda:1", "cuda:1"),
        (make("rocm", 1), "rocm:1", "cuda:1"),
        (make("mps"), "mps", "mps"),
        (make("openvino", **{OPENVINO_DEVICE: "GPU"}), "openvino:GPU", "cpu"),
        (make("openvino", **{OPENVINO_DEVICE: "CPU"}), "openvino:CPU", "cpu"),
        (make("qnn"), "qnn", "cpu"),
        (make("cpu"), "cpu", "cpu"),
    ],
)
def test_id_and_torch_device(
    device: Device, expected_id: str, expected_torch: str
) -> None:
    assert device.id == expected_id
    assert device.torch_device() == expected_torch


@pytest.mark.parametrize("kind", KINDS)
def test_backend_defaults_from_kind(kind: str) -> None:
    assert make(kind, 0).backend == BACKENDS[kind]


def test_backends_match_the_house_rules() -> None:
    assert BACKENDS == {
        "cuda": "torch",
        "rocm": "torch",
        "mps": "torch",
        "openvino": "openvino",
        "qnn": "onnxruntime",
        "cpu": "torch",
    }
    assert KINDS == ("cuda", "rocm", "mps", "openvino", "qnn", "cpu")


def test_explicit_backend_is_kept() -> None:
    assert (
        Device(kind="cpu", index=None, name="x", backend="llama.cpp").backend
        == "llama.cpp"
    )


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown device kind 'tpu'"):
        Device(kind="tpu", index=0, name="TPU v5")


def test_dtypes_become_a_tuple() -> None:
    device = Device(kind="cpu", index=None, name="x", dtypes=["float32", "bfloat16"])
    assert device.dtypes == ("float32", "bfloat16")


def test_to_dict_is_json_ready() -> None:
    device = Device(
        kind="cuda",
        index=0,
        name="H100",
        memory_total=80,
        memory_free=70,
        dtypes=("float32", "bfloat16"),
        details={"isa": ("avx2",), "nested": {"flags": {"b", "a"}}},
    )
    data = json.loads(json.dumps(device.to_dict()))
    assert data["id"] == "cuda:0"
    assert data["dtypes"] == ["float32", "bfloat16"]
    assert data["details"] == {"isa": ["avx2"], "nested": {"flags": ["a", "b"]}}
    assert data["backend"] == "torch"
    assert data["memory_free"] == 70


def test_equality_and_hash_ignore_details() -> None:
    first = Device(kind="cpu", index=None, name="x", details={"isa": ["avx2"]})
    second = Device(kind="cpu", index=None, name="x", details={"isa": ["neon"]})
    assert first == second
    assert len({first, second}) == 1
    with pytest.raises(AttributeError):
        first.name = "y"  # type: ignore[misc]
