"""A model's spec is refused when loading it would run code it ships (pickle-only weights,
auto_map custom code) unless its settings allow it, or when a weights file is malformed;
loads then pass those settings to every ``from_pretrained``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from hfserve.backends.pretrained import model_kwargs, tokenizer_kwargs
from hfserve.errors import MalformedModel, UnsafeModel
from hfserve.model_config import ModelConfig
from hfserve.registry import build_spec

BERT = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32,
        "num_hidden_layers": 2, "vocab_size": 100}


def folder(tmp_path: Path, *weights: str, config: dict | None = None) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config or BERT))
    for name in weights:
        if name.endswith(".safetensors"):
            raw = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
            (model / name).write_bytes(struct.pack("<Q", len(raw)) + raw.encode() + b"\0" * 4)
        else:
            (model / name).write_bytes(b"not read")
    return model


def test_both_settings_are_off_by_default() -> None:
    mc = ModelConfig(source="x")
    assert mc.allow_pickle is False and mc.trust_remote_code is False


def test_a_pickle_only_folder_is_refused_naming_its_files_and_the_setting(tmp_path) -> None:
    model = folder(tmp_path, "pytorch_model.bin", "extra.pt")
    with pytest.raises(UnsafeModel) as err:
        build_spec(ModelConfig(source=str(model)))
    message = err.value.message
    assert "allow_pickle: true" in message
    assert "pytorch_model.bin" in message and "extra.pt" in message
    assert err.value.code == "unsafe_model" and err.value.status == 400


@pytest.mark.parametrize("name", ["model.ckpt", "weights.pth"])
def test_every_pickle_suffix_counts(tmp_path, name) -> None:
    with pytest.raises(UnsafeModel, match=name):
        build_spec(ModelConfig(source=str(folder(tmp_path, name))))


def test_allow_pickle_lets_a_pickle_only_folder_load_through_transformers(tmp_path) -> None:
    spec = build_spec(ModelConfig(source=str(folder(tmp_path, "pytorch_model.bin")),
                                  allow_pickle=True))
    assert spec.options["allow_pickle"] is True
    assert "use_safetensors" not in model_kwargs(spec)


def test_safetensors_beside_pickles_load_alone(tmp_path) -> None:
    spec = build_spec(ModelConfig(source=str(folder(tmp_path, "model.safetensors",
                                                    "pytorch_model.bin"))))
    assert model_kwargs(spec) == {"trust_remote_code": False, "use_safetensors": True}


def test_an_openvino_ir_bin_is_not_a_pickle(tmp_path) -> None:
    model = folder(tmp_path, "openvino_model.bin")
    (model / "openvino_model.xml").write_text("<net/>")
    assert build_spec(ModelConfig(source=str(model))).name == "model"


def test_a_malformed_safetensors_file_fails_the_spec(tmp_path) -> None:
    model = folder(tmp_path)
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 20) + b"{}")
    with pytest.raises(MalformedModel, match="runs past the end of the file"):
        build_spec(ModelConfig(source=str(model)))


def test_a_truncated_gguf_fails_the_spec_before_transformers_reads_it(tmp_path) -> None:
    (tmp_path / "cut.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 5, 5))
    with pytest.raises(MalformedModel, match="cut.gguf"):
        build_spec(ModelConfig(source=str(tmp_path / "cut.gguf")))


def test_auto_map_in_config_json_is_refused(tmp_path) -> None:
    model = folder(tmp_path, "model.safetensors",
                   config={**BERT, "auto_map": {"AutoModel": "modeling_x.XModel"}})
    with pytest.raises(UnsafeModel) as err:
        build_spec(ModelConfig(source=str(model)))
    assert "trust_remote_code: true" in err.value.message
    assert "config.json" in err.value.message


def test_auto_map_in_tokenizer_config_json_is_refused(tmp_path) -> None:
    model = folder(tmp_path, "model.safetensors")
    (model / "tokenizer_config.json").write_text(json.dumps(
        {"auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}}))
    with pytest.raises(UnsafeModel, match="auto_map in tokenizer_config.json"):
        build_spec(ModelConfig(source=str(model)))


def test_trust_remote_code_lets_custom_code_through_and_reaches_the_loads(tmp_path) -> None:
    model = folder(tmp_path, "model.safetensors",
                   config={**BERT, "auto_map": {"AutoModel": "modeling_x.XModel"}})
    spec = build_spec(ModelConfig(source=str(model), trust_remote_code=True))
    assert tokenizer_kwargs(spec) == {"trust_remote_code": True}
    assert model_kwargs(spec)["trust_remote_code"] is True


def test_a_plain_folder_passes_and_its_loads_trust_no_code(tmp_path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(BERT))
    spec = build_spec(ModelConfig(source=str(tmp_path / "model")))
    assert tokenizer_kwargs(spec) == {"trust_remote_code": False}


def test_torch_loads_pass_both_settings_to_from_pretrained(tmp_path) -> None:
    import torch

    from hfserve.backends.placement import Placement
    from hfserve.backends.torch_backend import load_torch_model

    seen: list[dict] = []

    class Auto:
        @staticmethod
        def from_pretrained(path, **kwargs):
            seen.append(kwargs)
            return torch.nn.Linear(1, 1)

    spec = build_spec(ModelConfig(source=str(folder(tmp_path, "model.safetensors",
                                                    "pytorch_model.bin"))))
    load_torch_model(Auto, spec, Placement(device="cpu", dtype="float32"))
    assert seen[0]["use_safetensors"] is True and seen[0]["trust_remote_code"] is False
