import json

from hfserve.hardware import report
from hfserve.hardware.device import OPENVINO_DEVICE, Device

GIB = 1 << 30

DEVICES = [
    Device(
        kind="cuda",
        index=0,
        name="NVIDIA H100 80GB HBM3",
        memory_total=80 * GIB,
        memory_free=int(70.5 * GIB),
        dtypes=("float32", "bfloat16", "float16"),
    ),
    Device(
        kind="openvino",
        index=None,
        name="Intel NPU",
        dtypes=("float16",),
        details={OPENVINO_DEVICE: "NPU"},
    ),
    Device(
        kind="cpu",
        index=None,
        name="Xeon",
        memory_total=16 * GIB,
        memory_free=8 * GIB,
        details={"isa": ("avx2",)},
    ),
]


def test_format_table_rows_and_units() -> None:
    lines = report.format_table(DEVICES).splitlines()
    assert len(lines) == 4
    assert lines[0].split() == [
        "ID",
        "NAME",
        "TOTAL",
        "GiB",
        "FREE",
        "GiB",
        "DTYPES",
        "BACKEND",
    ]
    assert lines[1].split() == [
        "cuda:0",
        "NVIDIA",
        "H100",
        "80GB",
        "HBM3",
        "80.0",
        "70.5",
        "float32,bfloat16,float16",
        "torch",
    ]
    assert lines[2].split() == [
        "openvino:NPU",
        "Intel",
        "NPU",
        "-",
        "-",
        "float16",
        "openvino",
    ]
    assert lines[3].split()[0] == "cpu"


def test_format_table_columns_line_up() -> None:
    lines = report.format_table(DEVICES).splitlines()
    start = lines[0].index("NAME")
    assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines)


def test_format_table_with_no_devices_is_just_the_header() -> None:
    assert report.format_table([]).startswith("ID")
    assert len(report.format_table([]).splitlines()) == 1


def test_to_json_round_trips() -> None:
    data = json.loads(report.to_json(DEVICES))
    assert [item["id"] for item in data] == ["cuda:0", "openvino:NPU", "cpu"]
    assert data[0]["memory_total"] == 80 * GIB
    assert data[1]["memory_free"] is None
    assert data[2]["details"] == {"isa": ["avx2"]}
