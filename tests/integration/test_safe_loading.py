"""A real server refuses models whose loading would run code they ship or whose weights
files are malformed, lists each as failed with its reason, and serves a real model beside
them. The pickle's payload would create a file: it never appears."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from .conftest import MINILM, SMOL, launch, stop

pytestmark = pytest.mark.integration

BERT = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 30522, "max_position_embeddings": 128}


class Payload:
    """Unpickling this creates ``sentinel``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return Path.touch, (self.sentinel,)


def model_folder(root: Path, name: str, config: dict | None = None) -> Path:
    from transformers import AutoTokenizer

    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config or BERT))
    AutoTokenizer.from_pretrained(str(MINILM)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsafe-models")
    sentinel = root / "sentinel"
    pickled = model_folder(root, "pickled")
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(sentinel)))
    # The payload is live: loading it the unsafe way would create the sentinel.
    pickle.loads((pickled / "pytorch_model.bin").read_bytes())
    assert sentinel.exists()
    sentinel.unlink()

    broken = model_folder(root, "broken")
    (broken / "model.safetensors").write_bytes(struct.pack("<Q", 10**6) + b"{}")
    custom = model_folder(root, "custom", {**BERT, "auto_map": {"AutoModel": "x.XModel"}})
    with SMOL.open("rb") as f:
        (root / "cut.gguf").write_bytes(f.read(64 * 1024))

    tmp = tmp_path_factory.mktemp("safe-server")
    config = {"cache_dir": str(tmp / "cache"), "skip_unservable_models": True, "models": [
        {"name": "minilm", "source": str(MINILM), "backend": "torch", "threads": 1},
        {"name": "pickled", "source": str(pickled), "backend": "torch", "threads": 1},
        {"name": "broken", "source": str(broken), "backend": "torch", "threads": 1},
        {"name": "custom", "source": str(custom), "backend": "torch", "threads": 1},
        {"name": "cut", "source": str(root / "cut.gguf"), "backend": "torch", "threads": 1},
    ]}
    proc, base, log = launch(config, tmp)
    try:
        yield base, sentinel
    finally:
        stop(proc, log)


def card(base: str, name: str) -> dict:
    response = httpx.get(f"{base}/v1/models/{name}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name,reason", [
    ("pickled", "only pickle files (pytorch_model.bin)"),
    ("broken", "malformed safetensors file 'model.safetensors': header length 1000000 runs "
               "past the end of the file"),
    ("custom", "ships custom Python code (auto_map in config.json)"),
    ("cut", "malformed GGUF file 'cut.gguf': the file ends inside its metadata"),
])
def test_each_unsafe_or_malformed_model_is_failed_with_its_reason(served, name, reason):
    base, _ = served
    info = card(base, name)
    assert info["state"] == "failed"
    assert reason in info["error"]
    assert "\n" not in info["error"]


def test_the_pickle_names_the_setting_and_never_runs(served):
    base, sentinel = served
    assert "allow_pickle: true" in card(base, "pickled")["error"]
    # A request for it tries the model again and is refused again, unpickling nothing.
    response = httpx.post(f"{base}/v1/embeddings", timeout=60,
                          json={"model": "pickled", "input": "hello"})
    assert response.status_code in (400, 503)
    assert "allow_pickle" in response.json()["error"]["message"]
    assert not sentinel.exists()


def test_the_real_model_beside_them_answers(served):
    base, _ = served
    assert card(base, "minilm")["state"] == "ready"
    client = OpenAI(base_url=f"{base}/v1", api_key="none")
    result = client.embeddings.create(model="minilm", input=["a sentence", "another"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 384
    assert httpx.get(f"{base}/ready", timeout=10).status_code == 200
