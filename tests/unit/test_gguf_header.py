"""A GGUF file is checked before transformers parses it: magic, version, counts the file can
hold, metadata inside the file, every tensor's bytes inside the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from hfserve.errors import MalformedModel
from hfserve.registry.gguf_header import check_gguf

SMOL = Path(__file__).resolve().parents[2] / ".cache" / "models" / \
    "SmolLM2-135M-Instruct.Q4_1.gguf"


def tiny_gguf(path: Path) -> Path:
    """A small whole GGUF file with two float tensors and some metadata."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_token_list(["<s>", "</s>", "hello"])
    writer.add_tensor("a", np.ones((4, 8), dtype=np.float32))
    writer.add_tensor("b", np.zeros(64, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def reason(path: Path) -> str:
    with pytest.raises(MalformedModel) as err:
        check_gguf(path)
    assert err.value.code == "malformed_model_file"
    assert "\n" not in err.value.message and path.name in err.value.message
    return err.value.message


def test_a_whole_file_passes(tmp_path) -> None:
    check_gguf(tiny_gguf(tmp_path / "tiny.gguf"))


@pytest.mark.skipif(not SMOL.exists(), reason="demo models missing: run `make models`")
def test_the_real_smollm2_file_passes() -> None:
    check_gguf(SMOL)


@pytest.mark.skipif(not SMOL.exists(), reason="demo models missing: run `make models`")
def test_the_first_64_kib_of_a_real_file_are_truncated_metadata(tmp_path) -> None:
    with SMOL.open("rb") as f:
        (tmp_path / "cut.gguf").write_bytes(f.read(64 * 1024))
    assert "ends inside its metadata" in reason(tmp_path / "cut.gguf")


def test_a_file_cut_inside_its_tensor_data(tmp_path) -> None:
    data = tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-100])
    message = reason(tmp_path / "cut.gguf")
    assert "tensor 'b' ends at byte" in message and "past the end of the file" in message


def test_a_wrong_magic(tmp_path) -> None:
    data = tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "magic.gguf").write_bytes(b"GGML" + data[4:])
    assert "magic b'GGML' is not b'GGUF'" in reason(tmp_path / "magic.gguf")


def test_an_empty_file(tmp_path) -> None:
    (tmp_path / "empty.gguf").write_bytes(b"")
    assert "empty" in reason(tmp_path / "empty.gguf")


def test_an_unknown_version(tmp_path) -> None:
    data = tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "v9.gguf").write_bytes(data[:4] + struct.pack("<I", 9) + data[8:])
    assert "version 9" in reason(tmp_path / "v9.gguf")


@pytest.mark.parametrize("tensors,entries", [(2**40, 3), (2, 2**40), (10**5, 10**5)])
def test_counts_the_file_cannot_hold(tmp_path, tensors, entries) -> None:
    data = tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "counts.gguf").write_bytes(data[:8] + struct.pack("<QQ", tensors, entries)
                                           + data[24:])
    assert "cannot be held" in reason(tmp_path / "counts.gguf")


def test_a_header_shorter_than_the_counts(tmp_path) -> None:
    (tmp_path / "short.gguf").write_bytes(b"GGUF\3\0\0\0\1")
    assert "shorter than the GGUF header" in reason(tmp_path / "short.gguf")
