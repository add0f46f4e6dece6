"""GET /v1/models, /v1/models/{id}, health and readiness, on the real models."""

from __future__ import annotations

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import CHAT, EMBED


def test_list_has_both_demo_models(client):
    ids = {m.id for m in client.models.list().data}
    assert {EMBED, CHAT} <= ids


def test_get_model_describes_architecture_task_and_device(http):
    info = http.get(f"/v1/models/{CHAT}").json()
    assert info["id"] == CHAT
    assert info["object"] == "model"
    assert info["state"] == "ready"
    assert info["family"] == "decoder-only"
    assert info["task"] == "text-generation"
    assert info["device"] == "cpu"
    assert info["gguf_file"].endswith(".gguf")
    emb = http.get(f"/v1/models/{EMBED}").json()
    assert emb["task"] == "embedding" and emb["architecture"] == "BertModel"


def test_alias_resolves_to_the_model(client):
    assert client.models.retrieve("sentence-transformers/all-MiniLM-L6-v2").id == EMBED


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model")
    assert err.value.body["code"] == "model_not_found"


def test_health_ready_metrics(http):
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready").json()
    assert ready["status"] == "ready" and ready["models"][EMBED] == "ready"
    http.post("/v1/embeddings", json={"model": EMBED, "input": "metrics please"})
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    served = [s for s in families["hfserve_requests"].samples
              if s.name == "hfserve_requests_total" and s.labels == {
                  "route": "/v1/embeddings", "model": EMBED, "status": "200"}]
    assert served and served[0].value >= 1
    assert any(s.labels.get("model") == EMBED for s in families["hfserve_batch_size"].samples)
    assert "hfserve_queue_depth" in families


def test_openapi_docs_served(http):
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert "/v1/chat/completions" in paths and "/v1/embeddings" in paths
