"""The MCP tool table over a fake engine's model list: which tools a model gets in each
state, their names and schemas; the SDK's transport security from the Host rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hfserve.mcp import arguments
from hfserve.mcp.server import transport_security
from hfserve.mcp.tools import tool_name, tool_table
from hfserve.security.exposure import HostRule


class Models:
    """The one engine call the table makes (fakes belong to unit tests)."""

    def __init__(self, models: list[dict[str, Any]]) -> None:
        self._models = models

    def models(self) -> list[dict[str, Any]]:
        return self._models


def model(name: str, state: str, task: str, tasks: list[str]) -> dict[str, Any]:
    return {"id": name, "state": state, "task": task, "tasks": tasks}


LM_TASKS = ["text-generation", "text-classification", "embedding"]


def test_a_loaded_model_has_a_tool_per_task_it_serves() -> None:
    table = tool_table(Models([model("minilm", "ready", "embedding", ["embedding"]),
                               model("nli", "ready", "text-classification",
                                     ["text-classification", "zero-shot-classification"]),
                               model("smol", "ready", "text-generation",
                                     ["text-generation"])]))
    assert sorted(table) == ["chat_smol", "classify_nli", "complete_smol", "embed_minilm",
                             "zero_shot_nli"]
    assert table["embed_minilm"].model == "minilm"
    assert "minilm" in table["embed_minilm"].description


def test_a_model_not_loaded_has_the_tools_of_its_default_task_only() -> None:
    # Before loading, a causal LM's config names embedding and classification too.
    table = tool_table(Models([model("smol", "unloaded", "text-generation", LM_TASKS)]))
    assert sorted(table) == ["chat_smol", "complete_smol"]


@pytest.mark.parametrize("state", ["failed", "unsupported"])
def test_a_model_that_cannot_serve_has_no_tools(state: str) -> None:
    assert tool_table(Models([model("smol", state, "text-generation", LM_TASKS)])) == {}


def test_tool_names_keep_to_the_allowed_characters() -> None:
    assert tool_name("embed", "sentence-transformers/all MiniLM") == \
        "embed_sentence-transformers_all_MiniLM"
    assert len(tool_name("chat", "x" * 300)) == 128


def test_arguments_refuse_unknown_fields_and_out_of_range_values() -> None:
    with pytest.raises(ValidationError):
        arguments.EmbedArguments.model_validate({"input": "a", "surprise": 1})
    with pytest.raises(ValidationError):
        arguments.ChatArguments.model_validate(
            {"messages": [{"role": "user", "content": "hi"}], "temperature": 3})
    with pytest.raises(ValidationError):
        arguments.RerankArguments.model_validate({"query": "q", "documents": []})
    schema = arguments.ChatArguments.model_json_schema()
    assert schema["type"] == "object" and schema["required"] == ["messages"]


def test_transport_security_follows_the_host_rule() -> None:
    security = transport_security(HostRule(["api.example.org"], "127.0.0.1",
                                           ["https://app.example.org"]))
    assert security.enable_dns_rebinding_protection
    assert {"api.example.org:*", "localhost:*", "127.0.0.1:*"} <= set(security.allowed_hosts)
    assert "https://app.example.org" in security.allowed_origins
    assert "http://localhost:*" in security.allowed_origins
    assert "http://evil.example:*" not in security.allowed_origins
    assert not transport_security(HostRule(["*"], "0.0.0.0", [])) \
        .enable_dns_rebinding_protection
