import json
from importlib import resources

import pytest

from hfserve.hardware import compatibility
from hfserve.hardware.compatibility import Support
from hfserve.hardware.device import KINDS
from hfserve.types import Family

F, P, N = "full", "partial", "none"
EXPECTED = {
    # family:            cuda rocm mps openvino qnn cpu
    "encoder-only": (F, F, F, F, F, F),
    "decoder-only": (F, F, F, F, P, F),
    "encoder-decoder": (F, F, F, F, N, F),
    "vision": (F, F, F, F, F, F),
    "object-detection": (F, F, F, F, P, F),
    "speech": (F, F, F, F, P, F),
    "speech-generation": (F, F, F, F, N, F),
    "vision-text": (F, F, F, F, P, F),
    "vision-language": (F, F, P, N, N, F),
    "moe": (F, F, P, N, N, F),
    "state-space": (F, F, F, N, N, F),
    "diffusion": (F, F, F, N, N, F),   # torch only: no OpenVINO text-to-image skill yet
}


def test_table_matches_the_agreed_values() -> None:
    assert compatibility.table() == {
        family: dict(zip(KINDS, levels, strict=True))
        for family, levels in EXPECTED.items()
    }


def test_every_family_is_covered() -> None:
    assert set(compatibility.table()) == {family.value for family in Family}


@pytest.mark.parametrize("family", list(Family))
def test_support_accepts_enum_and_string(family: Family) -> None:
    for kind in KINDS:
        assert compatibility.support(family, kind) == compatibility.support(
            family.value, kind
        )
        assert isinstance(compatibility.support(family, kind), Support)


def test_compatible_kinds_in_priority_order() -> None:
    assert compatibility.compatible_kinds(Family.VISION_LANGUAGE) == [
        "cuda",
        "rocm",
        "mps",
        "cpu",
    ]
    assert compatibility.compatible_kinds("decoder-only") == list(KINDS)
    assert compatibility.compatible_kinds(Family.STATE_SPACE) == [
        "cuda",
        "rocm",
        "mps",
        "cpu",
    ]


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError):
        compatibility.support("transformer-xl", "cpu")
    with pytest.raises(ValueError, match="unknown device kind 'tpu'"):
        compatibility.support(Family.VISION, "tpu")


def test_table_copy_does_not_change_the_source() -> None:
    copy = compatibility.table()
    copy["moe"]["openvino"] = "full"
    assert compatibility.support(Family.MOE, "openvino") is Support.NONE


def test_data_file_ships_inside_the_package() -> None:
    path = resources.files("hfserve.hardware").joinpath(compatibility.DATA_FILE)
    assert json.loads(path.read_text(encoding="utf-8"))["kinds"] == list(KINDS)


def document() -> dict:
    return json.loads(
        resources.files("hfserve.hardware")
        .joinpath(compatibility.DATA_FILE)
        .read_text(encoding="utf-8")
    )


def test_parse_rejects_a_missing_family() -> None:
    doc = document()
    del doc["families"]["moe"]
    with pytest.raises(ValueError, match="missing \\['moe'\\]"):
        compatibility.parse(json.dumps(doc))


def test_parse_rejects_an_unknown_level() -> None:
    doc = document()
    doc["families"]["moe"]["cuda"] = "maybe"
    with pytest.raises(ValueError, match="maybe"):
        compatibility.parse(json.dumps(doc))


def test_parse_rejects_a_row_missing_a_kind() -> None:
    doc = document()
    del doc["families"]["vision"]["qnn"]
    with pytest.raises(ValueError, match="vision"):
        compatibility.parse(json.dumps(doc))
