"""Tool-call parsers: each family's format, whole and streamed character by character
(the same calls either way), text around calls kept as content, malformed calls left as
content; the constraint of a forced call; the parser chosen per template."""

from __future__ import annotations

import json

import pytest

from hfserve.api.tool_output import StreamedCalls, whole_message
from hfserve.text import grammar
from hfserve.tool_calls import FORMATS, ToolCall, ToolCallParser, parse_text
from hfserve.tool_calls.choice import parser_for_template
from hfserve.tool_calls.prompt import template_arguments, with_tool_preamble

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}}}}

CASES = {
    "hermes": ('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": '
               '{"city": "Paris"}}\n</tool_call>\n<tool_call>{"name": "get_time", '
               '"arguments": {"zone": "CET"}}</tool_call>',
               "Let me look.\n\n"),
    "llama3": ('{"name": "get_weather", "parameters": {"city": "Paris"}}; '
               '{"name": "get_time", "parameters": {"zone": "CET"}}', ""),
    "mistral": ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                '{"name": "get_time", "arguments": {"zone": "CET"}}]', ""),
    "json": ('[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
             '{"name": "get_time", "arguments": "{\\"zone\\": \\"CET\\"}"}]', ""),
}
EXPECTED = [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]


def _calls(calls: list[ToolCall]) -> list[tuple[str, dict]]:
    return [(c.name, json.loads(c.arguments)) for c in calls]


def _streamed(fmt, text: str) -> list:
    parser = ToolCallParser(fmt)
    pieces = []
    for ch in text:
        pieces += parser.feed(ch)
    return pieces + parser.finish()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_format_whole_and_streamed(name):
    text, content = CASES[name]
    got_content, calls = parse_text(FORMATS[name], text)
    assert got_content == content and _calls(calls) == EXPECTED
    pieces = _streamed(FORMATS[name], text)
    assert "".join(p for p in pieces if isinstance(p, str)) == content
    assert _calls([p for p in pieces if isinstance(p, ToolCall)]) == EXPECTED
    assert all(c.id.startswith("call_") for c in calls)


def test_content_before_a_call_streams_before_the_call_is_complete():
    parser = ToolCallParser(FORMATS["hermes"])
    assert parser.feed("Checking ") == ["Checking "]
    assert parser.feed("<tool_") == []                    # could be a call's start
    assert parser.feed('call>{"name": "get_time", ') == []
    out = parser.feed('"arguments": {}}</tool_call>')
    assert len(out) == 1 and out[0].name == "get_time"


@pytest.mark.parametrize("name, text", [
    ("hermes", 'A<tool_call>{"name": "f", "arguments": {oops}</tool_call>B'),
    ("hermes", "I will call <tool_call>{\"name\": \"f\""),           # cut off
    ("hermes", 'x <tool_call>{"arguments": {}}</tool_call>'),         # no name
    ("llama3", 'The answer is {"name": "f", "parameters": {}}'),      # text first
    ("llama3", '{"name": "f", "parameters": [1]}'),                   # not an object
    ("mistral", "[TOOL_CALLS][not json"),
    ("json", '{"city": "Paris"}'),                                    # JSON, not a call
    ("json", "Plain words."),
])
def test_malformed_output_is_left_as_content(name, text):
    content, calls = parse_text(FORMATS[name], text)
    assert calls == [] and content == text
    streamed = _streamed(FORMATS[name], text)
    assert "".join(p for p in streamed if isinstance(p, str)) == text


def test_a_lone_brace_is_not_held_forever_by_the_json_formats():
    parser = ToolCallParser(FORMATS["llama3"])
    assert parser.feed("Hi {") == ["Hi {"]


def test_whole_message_and_stream_chunks_agree():
    text = CASES["hermes"][0]
    message, count = whole_message("hermes", text, parallel=True)
    assert count == 2 and message["content"] == "Let me look.\n\n"
    streamed = StreamedCalls("hermes", 1, parallel=True)
    chunks = []
    for i in range(0, len(text), 7):
        chunks += streamed.choices(0, text[i:i + 7], None)
    chunks += streamed.choices(0, "", "stop")
    heads = [c["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["delta"]
             and "id" in c["delta"]["tool_calls"][0]]
    assert [h["function"]["name"] for h in heads] == ["get_weather", "get_time"]
    assert [h["function"]["arguments"] for h in heads] == ["", ""]
    args = ["".join(c["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks
                    if "tool_calls" in c["delta"] and c["delta"]["tool_calls"][0]["index"] == k)
            for k in (0, 1)]
    assert args == [t["function"]["arguments"] for t in message["tool_calls"]]
    assert chunks[-1]["finish_reason"] == "tool_calls"


def test_one_call_only_without_parallel_tool_calls():
    message, count = whole_message("hermes", CASES["hermes"][0], parallel=False)
    assert count == 1 and message["tool_calls"][0]["function"]["name"] == "get_weather"
    streamed = StreamedCalls("hermes", 1, parallel=False)
    chunks = streamed.choices(0, CASES["hermes"][0], "stop")
    assert sum("id" in c["delta"].get("tool_calls", [{}])[0] for c in chunks) == 1


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_forced_call_compiles_and_names_the_function(name):
    fmt = FORMATS[name]
    constraint = fmt.forced([WEATHER, TIME], "get_time", parallel=False)
    grammar.check(constraint)
    schema = json.loads(constraint.value)
    assert "get_time" in constraint.value and "get_weather" not in constraint.value
    if fmt.list_block:
        assert schema["maxItems"] == 1
    # what the constraint describes is what the parser reads
    call = {"name": "get_time", fmt.arguments_key: {"zone": "UTC"}}
    body = json.dumps([call] if fmt.list_block else call)
    _, calls = parse_text(fmt, constraint.prefix + body + constraint.suffix)
    assert _calls(calls) == [("get_time", {"zone": "UTC"})]


def test_required_allows_any_of_the_tools():
    constraint = FORMATS["hermes"].forced([WEATHER, TIME], None, parallel=True)
    names = {o["properties"]["name"]["const"] for o in json.loads(constraint.value)["anyOf"]}
    assert names == {"get_weather", "get_time"}


@pytest.mark.parametrize("template, arch, renders, expected", [
    ("{{ tools }}<tool_call>", "Qwen2ForCausalLM", True, "hermes"),
    ("{{ tools }}[TOOL_CALLS]", "MistralForCausalLM", True, "mistral"),
    ("{{ tools }}<|python_tag|>", "LlamaForCausalLM", True, "llama3"),
    ('{{ tools }} "parameters"', "LlamaForCausalLM", True, "llama3"),
    ("{{ tools }}", "GPT2LMHeadModel", True, "json"),
    ("{{ messages }}", "LlamaForCausalLM", False, "hermes"),
])
def test_the_parser_follows_the_template(template, arch, renders, expected):
    assert parser_for_template(template, arch, renders) == expected


def test_a_template_without_tools_gets_the_preamble_and_calls_as_text():
    messages = [{"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "",
                 "tool_calls": [{"id": "call_1", "type": "function", "function": {
                     "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    out = with_tool_preamble(messages, [WEATHER])
    assert out[0]["role"] == "system" and "get_weather" in out[0]["content"]
    assert "<tool_call>" in out[2]["content"] and "Paris" in out[2]["content"]
    assert out[3] == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}
    _, calls = parse_text(FORMATS["hermes"], out[2]["content"])
    assert _calls(calls) == [("get_weather", {"city": "Paris"})]


def test_templates_that_render_tools_get_arguments_as_objects():
    out = template_arguments([{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function",
         "function": {"name": "f", "arguments": '{"a": 1}'}}]}])
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
