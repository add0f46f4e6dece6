"""Skill files from an operator's folder, served: a BERT embedding skill in the seed
ecosystem's format (tests/integration/skill_files/hf_bert.py) is found by MiniLM's
model_type, initialised for the CPU and served through /v1/embeddings with the vectors
transformers gives; a file whose handler returns a canned placeholder is refused with a
clear 502, and the server goes on serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from .conftest import MINILM, launch, stop

SKILLS = Path(__file__).parent / "skill_files"
SEED, PLACEHOLDER = "minilm-seed", "minilm-placeholder"
TEXTS = ["The cat sat on the mat.", "A quick brown fox", "hfserve serves models"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugins")
    config = {"cache_dir": str(tmp / "cache"), "skills_dir": str(SKILLS), "models": [
        {"name": SEED, "source": str(MINILM), "threads": 1},
        {"name": PLACEHOLDER, "source": str(MINILM), "threads": 1, "skill": "hf_placeholder"}]}
    proc, url, log = launch(config, tmp)
    yield url
    stop(proc, log)


def reference(texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(MINILM))
    model = AutoModel.from_pretrained(str(MINILM)).eval()
    tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def test_a_seed_skill_file_serves_embeddings_equal_to_transformers(base) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none")
    got = client.embeddings.create(model=SEED, input=TEXTS)
    vectors = np.array([d.embedding for d in got.data])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, reference(TEXTS), atol=1e-4)
    info = httpx.get(f"{base}/v1/models/{SEED}").json()
    assert info["skill_file"] == "hf_bert.py" and info["device"] == "cpu"


def test_placeholder_output_is_refused_not_served(base) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.InternalServerError) as refused:
        client.embeddings.create(model=PLACEHOLDER, input="hello")
    assert refused.value.status_code == 502
    error = refused.value.body
    assert error["code"] == "invalid_plugin_output"
    assert "placeholder" in error["message"] and "MOCK" in error["message"]
    again = client.embeddings.create(model=SEED, input="still serving")
    assert len(again.data[0].embedding) == 384


def test_a_seed_skill_takes_text_only(base) -> None:
    r = httpx.post(f"{base}/v1/embeddings", json={"model": SEED, "input": [[101, 102]]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
