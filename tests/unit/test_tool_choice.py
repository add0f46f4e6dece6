"""tool_choice below the seam: what the template sees, whether output is read for calls,
and the constraint of a forced call."""

from __future__ import annotations

import json

import pytest

from hfserve.errors import InvalidRequest
from hfserve.runtime.events import GenerationInput
from hfserve.runtime.generation.tool_choice import apply_tool_choice
from hfserve.text import grammar

TOOL = {"type": "function", "function": {"name": "f", "parameters": {
    "type": "object", "properties": {"x": {"type": "integer"}}}}}


def _request(**options) -> GenerationInput:
    return GenerationInput(messages=[{"role": "user", "content": "hi"}], options=options)


def test_auto_reads_calls_without_constraining():
    request = _request(tools=[TOOL])
    assert apply_tool_choice(request, "hermes", grammar.check) == "hermes"
    assert request.params.constraint is None and request.options["tools"] == [TOOL]


def test_none_hides_the_tools_and_reads_nothing():
    request = _request(tools=[TOOL], tool_choice="none")
    assert apply_tool_choice(request, "hermes", grammar.check) is None
    assert request.options["tools"] is None


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "f"}}])
def test_required_and_named_constrain_to_a_call(choice):
    request = _request(tools=[TOOL], tool_choice=choice)
    assert apply_tool_choice(request, "mistral", grammar.check) == "mistral"
    constraint = request.params.constraint
    assert constraint.prefix == "[TOOL_CALLS]"
    assert json.loads(constraint.value)["items"]["properties"]["name"] == {"const": "f"}


@pytest.mark.parametrize("options, param", [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
     "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "no-such-type"}}}], "tool_choice": "required"}, "tools"),
])
def test_what_cannot_be_done_is_a_400(options, param):
    with pytest.raises(InvalidRequest) as caught:
        apply_tool_choice(_request(**options), "hermes", grammar.check)
    assert caught.value.param == param
