"""A safetensors file's header is checked before loading: its length, its JSON, and every
tensor's bytes against the file and against its dtype x shape."""

from __future__ import annotations

import json
import struct

import pytest

from hfserve.errors import MalformedModel
from hfserve.registry.safetensors_header import check_safetensors


def write(path, header, data: bytes = b"", length: int | None = None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


TENSOR = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}


def test_a_sound_file_passes(tmp_path) -> None:
    check_safetensors(write(tmp_path / "ok.safetensors",
                            {"__metadata__": {"format": "pt"}, **TENSOR}, b"\0" * 24))


def test_a_real_file_written_by_safetensors_passes(tmp_path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 5, dtype=torch.bfloat16), "b": torch.ones(7)},
              str(tmp_path / "real.safetensors"))
    check_safetensors(tmp_path / "real.safetensors")


def reason(path) -> str:
    with pytest.raises(MalformedModel) as err:
        check_safetensors(path)
    assert err.value.code == "malformed_model_file"
    assert "\n" not in err.value.message
    return err.value.message


def test_a_header_length_past_the_end_of_the_file(tmp_path) -> None:
    message = reason(write(tmp_path / "long.safetensors", TENSOR, b"\0" * 24, length=10_000))
    assert "header length 10000 runs past the end of the file" in message
    assert "long.safetensors" in message


def test_a_header_length_over_the_cap(tmp_path) -> None:
    assert "cap" in reason(write(tmp_path / "huge.safetensors", TENSOR, length=2**40))


def test_a_file_shorter_than_the_length_field(tmp_path) -> None:
    (tmp_path / "tiny.safetensors").write_bytes(b"\1\2\3")
    assert "shorter than the 8-byte header length" in reason(tmp_path / "tiny.safetensors")


def test_a_header_that_is_not_json(tmp_path) -> None:
    assert "header is not JSON" in reason(write(tmp_path / "text.safetensors",
                                                b"this is not {json", b"\0" * 8))


def test_a_header_that_is_json_but_not_an_object(tmp_path) -> None:
    assert "not a JSON object" in reason(write(tmp_path / "list.safetensors", [1, 2]))


def test_offsets_past_the_end_of_the_data(tmp_path) -> None:
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "v": {"dtype": "F32", "shape": [1000], "data_offsets": [24, 4024]}}
    message = reason(write(tmp_path / "short.safetensors", header, b"\0" * 24))
    assert "tensor 'v' ends at byte 4024 of the data, past its end (24 bytes)" in message


def test_offsets_that_disagree_with_dtype_and_shape(tmp_path) -> None:
    header = {"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 24]}}
    message = reason(write(tmp_path / "size.safetensors", header, b"\0" * 24))
    assert "takes 24 bytes" in message and "needs 12" in message


@pytest.mark.parametrize("entry", [
    {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 24]},
    {"dtype": "F32", "shape": [6], "data_offsets": [24, 0]},
    {"dtype": "F32", "shape": [6], "data_offsets": [0]},
    {"dtype": "F32", "shape": "6", "data_offsets": [0, 24]},
    "not an object",
])
def test_malformed_tensor_entries(tmp_path, entry) -> None:
    assert "tensor 'w'" in reason(write(tmp_path / "bad.safetensors", {"w": entry},
                                        b"\0" * 24))


def test_an_unknown_dtype_is_checked_for_bounds_only(tmp_path) -> None:
    header = {"w": {"dtype": "F2_FUTURE", "shape": [6], "data_offsets": [0, 3]}}
    check_safetensors(write(tmp_path / "new.safetensors", header, b"\0" * 3))
    header["w"]["data_offsets"] = [0, 300]
    assert "past its end" in reason(write(tmp_path / "new.safetensors", header, b"\0" * 3))
