"""LoRA adapter requests and admin calls on a model whose skill cannot apply adapters (the
fake generation skill, as OpenVINO's): a 400 naming the backend and the way out, never the
base model's answer; adapter names are checked when the configuration is read."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from hfserve.model_config import ModelConfig


def adapter_folder(root, name: str):
    folder = root / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    return folder


@pytest.mark.asyncio(loop_scope="function")
async def test_an_adapter_on_a_backend_without_them_is_a_400(start, dirs, tmp_path):
    sql = adapter_folder(tmp_path, "sql")
    models = [{"source": str(dirs.gen), "name": "gen", "adapters": {"sql": str(sql)}}]
    async with start(models=models, model_roots=[tmp_path]) as srv:
        await srv.wait_ready()
        backend = srv.engine.manager.entries["gen"].skill.placement.backend
        for model in ("sql", "gen:sql"):
            response = await srv.client.post("/v1/completions", json={
                "model": model, "prompt": "hi", "max_tokens": 2})
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "adapters_unsupported"
            assert f"the {backend} backend" in error["message"]
            assert "backend: torch" in error["message"]
        # The base model itself still answers.
        plain = await srv.client.post("/v1/completions", json={
            "model": "gen", "prompt": "hi", "max_tokens": 2})
        assert plain.status_code == 200
        added = await srv.client.post("/v1/models/gen/adapters", json={
            "name": "more", "path": str(adapter_folder(tmp_path, "more"))})
        assert added.status_code == 400
        assert added.json()["error"]["code"] == "adapters_unsupported"
        listed = (await srv.client.get("/v1/models")).json()["data"]
        assert {m["id"]: m.get("parent") for m in listed}.get("sql") == "gen"
        assert "more" not in {m["id"] for m in listed}


@pytest.mark.asyncio(loop_scope="function")
async def test_adapter_routes_refuse_unknown_models_and_adapters(server):
    response = await server.client.post("/v1/models/nope/adapters",
                                        json={"name": "a", "path": "/x"})
    assert response.status_code == 404
    gone = await server.client.delete("/v1/models/gen/adapters/nope")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "model_not_found"
    bad = await server.client.post("/v1/models/gen/adapters",
                                   json={"name": "a:b", "path": "/x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "name"


def test_adapter_names_take_no_colon():
    with pytest.raises(ValidationError):
        ModelConfig(source="/m", adapters={"gen:sql": "/a"})
    assert ModelConfig(source="/m", adapters={"sql": "/a"}).adapters == {"sql": "/a"}
