"""``hfserve doctor``: package versions as installed, devices and why others are absent,
the models a serve would offer (and why one cannot be), and cache sizes."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from hfserve import cli

CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 8,
          "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 32}


@pytest.fixture
def places(tmp_path: Path, monkeypatch) -> tuple[Path, Path, Path]:
    import huggingface_hub.constants as constants

    hub, cache, model = tmp_path / "hub", tmp_path / "hfserve", tmp_path / "bert"
    hub.mkdir()
    (hub / "blob").write_bytes(b"x" * 3000)
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    return hub, cache, model


def test_doctor_json_reports_packages_devices_models_and_caches(places, capsys) -> None:
    hub, cache, model = places
    rc = cli.main(["doctor", "--json", "--cache-dir", str(cache), str(model)])
    found = json.loads(capsys.readouterr().out)
    assert rc == 0
    versions = {p["name"]: p["version"] for p in found["packages"]}
    assert versions["torch"] == metadata.version("torch")
    assert versions["transformers"] == metadata.version("transformers")
    assert found["devices"][-1]["kind"] == "cpu"
    assert {row["kind"] for row in found["absent"]} <= {"cuda", "rocm", "mps", "openvino",
                                                        "qnn"}
    assert found["models"] == [{"id": "bert", "source": str(model),
                                "family": "encoder-only", "task": "embedding"}]
    sizes = {c["path"]: c["bytes"] for c in found["caches"]}
    assert sizes == {str(hub): 3000, str(cache): None}


def test_doctor_text_names_a_broken_model_and_fails(places, capsys) -> None:
    _, cache, _ = places
    rc = cli.main(["doctor", "--cache-dir", str(cache), "/no/such/model"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "does not exist" in text
    for heading in ("packages:", "devices:", "models:", "caches:"):
        assert heading in text.splitlines()
    assert "torch build" in text


def test_a_missing_package_says_how_to_install_it(monkeypatch) -> None:
    from hfserve import doctor

    real = metadata.version

    def version(name: str) -> str:
        if name == "onnxruntime":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.metadata, "version", version)
    row = next(p for p in doctor.packages() if p["name"] == "onnxruntime")
    assert (row["version"], row["install"]) == (None, "pip install 'hfserve[onnx]'")
    assert doctor.healthy({"packages": doctor.packages(), "models": []})
