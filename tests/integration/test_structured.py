"""Structured output and tool calls on SmolLM2-135M-Instruct (GGUF), on torch and on
OpenVINO, through a server of this module's own and the openai SDK."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from .conftest import SMOL, launch, stop

TORCH = "smol-torch"
OPENVINO = "smol-ov"
BACKENDS = [TORCH, OPENVINO]

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"type": "string", "enum": ["Paris", "London", "Rome"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PROMPTS = ["Describe a person as JSON.", "Tell me about Anna, 31, who lives in Rome.",
           "Give me a JSON record of someone."]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not SMOL.exists():
        pytest.fail("demo models missing: run `make models`")
    tmp = tmp_path_factory.mktemp("structured")
    config = {"cache_dir": str(tmp / "cache"), "models": [
        {"name": TORCH, "source": str(SMOL), "threads": 1, "max_concurrent": 4,
         "backend": "torch", "dtype": "float32"},
        {"name": OPENVINO, "source": str(SMOL), "threads": 1, "max_concurrent": 4,
         "backend": "openvino", "own_process": True, "dtype": "float32"},
    ]}
    proc, base, log = launch(config, tmp, timeout=600)
    try:
        yield base
    finally:
        stop(proc, log)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=300,
                  _strict_response_validation=True)


def _json_schema_format(schema):
    return {"type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True}}


# --- structured output -------------------------------------------------------------------
@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_validates(client, model, seed):
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPTS[seed - 1]}],
        response_format=_json_schema_format(PERSON), seed=seed, temperature=0.8,
        max_tokens=80)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), PERSON)


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("seed", [4, 5])
def test_json_object_output_is_an_object(client, model, seed):
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "List two fruits as JSON."}],
        response_format={"type": "json_object"}, seed=seed, temperature=0.7,
        max_tokens=60)
    text = reply.choices[0].message.content
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:                       # cut by max_tokens: still the start of an object
        assert text.startswith("{")


@pytest.mark.parametrize("model", BACKENDS)
def test_completions_take_response_format_and_guided_choice(client, model):
    reply = client.completions.create(
        model=model, prompt="Is the sky blue? Answer:", max_tokens=40, temperature=0,
        extra_body={"response_format": _json_schema_format(
            {"type": "object", "properties": {"answer": {"type": "boolean"}},
             "required": ["answer"], "additionalProperties": False})})
    assert isinstance(json.loads(reply.choices[0].text)["answer"], bool)
    picked = client.completions.create(
        model=model, prompt="The colour of grass is", max_tokens=10, temperature=0,
        extra_body={"guided_choice": ["green", "purple (sometimes)"]})
    assert picked.choices[0].text in ("green", "purple (sometimes)")


@pytest.mark.parametrize("model", BACKENDS)
def test_a_schema_the_engine_cannot_compile_is_a_400(client, model):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}],
            response_format=_json_schema_format({"type": "no-such-type"}))
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["param"] == "response_format" and "no-such-type" in error["message"]


def test_unconstrained_requests_in_the_batch_are_unaffected(server, client):
    import concurrent.futures

    plain = {"model": TORCH, "messages": [{"role": "user", "content": "Name a colour."}],
             "temperature": 0, "max_tokens": 24}
    alone = client.chat.completions.create(**plain).choices[0].message.content
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        constrained = [pool.submit(client.chat.completions.create, model=TORCH,
                                   messages=[{"role": "user", "content": p}],
                                   response_format=_json_schema_format(PERSON),
                                   temperature=0, max_tokens=60) for p in PROMPTS[:2]]
        batched = [pool.submit(client.chat.completions.create, **plain) for _ in range(2)]
        texts = [f.result().choices[0].message.content for f in batched]
        for f in constrained:
            jsonschema.validate(json.loads(f.result().choices[0].message.content), PERSON)
    assert texts == [alone, alone]


def test_streamed_structured_output_joins_to_the_same_json(server, client):
    kwargs = {"model": TORCH, "messages": [{"role": "user", "content": PROMPTS[1]}],
              "response_format": _json_schema_format(PERSON), "temperature": 0,
              "max_tokens": 80}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    parts = [c.choices[0].delta.content or "" for c in
             client.chat.completions.create(stream=True, **kwargs) if c.choices]
    assert "".join(parts) == whole
    jsonschema.validate(json.loads(whole), PERSON)


def test_a_bad_response_format_type_is_a_400(server):
    got = httpx.post(f"{server}/v1/chat/completions", json={
        "model": TORCH, "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "xml"}}, timeout=60)
    assert got.status_code == 400
    assert "response_format" in json.dumps(got.json()["error"])


# --- tool calls --------------------------------------------------------------------------
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "maxLength": 30},
                                  "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string",
                                                             "maxLength": 20}},
                   "required": ["zone"], "additionalProperties": False}}}
TOOLS = [WEATHER, TIME]
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def _check_calls(message, names):
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments),
                            PARAMETERS[call.function.name])


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_tool_choice_required_gives_valid_calls(client, model, seed):
    reply = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS,
                                           tool_choice="required", seed=seed,
                                           temperature=0.7, max_tokens=80)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    _check_calls(choice.message, {"get_weather", "get_time"})


@pytest.mark.parametrize("model", BACKENDS)
def test_a_named_function_is_the_one_called(client, model):
    reply = client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, temperature=0, max_tokens=80,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    _check_calls(choice.message, {"get_time"})
    assert len(choice.message.tool_calls) == 1


@pytest.mark.parametrize("model", BACKENDS)
def test_streamed_tool_calls_reassemble_to_the_non_streamed_call(client, model):
    kwargs = {"model": model, "messages": ASK, "tools": TOOLS, "tool_choice": "required",
              "temperature": 0, "max_tokens": 80}
    whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls
    calls: dict[int, dict] = {}
    reasons = []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            reasons.append(choice.finish_reason)
            for part in choice.delta.tool_calls or []:
                call = calls.setdefault(part.index, {"id": None, "name": None,
                                                     "arguments": ""})
                if part.id:
                    assert call["id"] is None           # the id comes once, first
                    call["id"], call["name"] = part.id, part.function.name
                else:
                    assert call["id"] is not None
                call["arguments"] += part.function.arguments or ""
    assert reasons[-1] == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == \
        [(c.function.name, json.loads(c.function.arguments)) for c in whole]


@pytest.mark.parametrize("model", BACKENDS)
def test_a_tool_result_round_trip_completes(client, model):
    first = client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, temperature=0, max_tokens=80,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": '
         '"sunny"}'}]
    answer = client.chat.completions.create(model=model, messages=messages, tools=TOOLS,
                                            temperature=0, max_tokens=40)
    choice = answer.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls
    # the tool's result reached the prompt: it is longer than the first request's
    assert answer.usage.prompt_tokens > first.usage.prompt_tokens + 10


def test_tools_reach_the_prompt_and_none_keeps_them_out(client):
    plain = client.chat.completions.create(model=TORCH, messages=ASK, max_tokens=1)
    offered = client.chat.completions.create(model=TORCH, messages=ASK, tools=TOOLS,
                                             max_tokens=1)
    refused = client.chat.completions.create(model=TORCH, messages=ASK, tools=TOOLS,
                                             tool_choice="none", max_tokens=1)
    assert offered.usage.prompt_tokens > plain.usage.prompt_tokens + 50
    assert refused.usage.prompt_tokens == plain.usage.prompt_tokens


def test_naming_a_function_not_offered_is_a_400(client):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=TORCH, messages=ASK, tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}})
    assert caught.value.body["param"] == "tool_choice"


# --- LangChain ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_model(server):
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(model=TORCH, base_url=f"{server}/v1",
                                       api_key="unused", temperature=0, max_tokens=80,
                                       max_retries=0)


def test_langchain_bind_tools_with_tool_choice_required(chat_model):
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return "sunny"

    reply = chat_model.bind_tools([get_weather], tool_choice="required").invoke(
        "What is the weather in Rome?")
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    assert isinstance(reply.tool_calls[0]["args"]["city"], str)
    assert reply.tool_calls[0]["id"].startswith("call_")


def test_langchain_with_structured_output_returns_a_validated_object(chat_model):
    from pydantic import BaseModel, Field

    class City(BaseModel):
        name: str = Field(max_length=30)
        country: str = Field(max_length=30)
        population_millions: int = Field(ge=0, le=100)

    got = chat_model.with_structured_output(City).invoke("Describe Paris.")
    assert isinstance(got, City)
    assert got.name and got.country


# --- the Responses API -------------------------------------------------------------------
RESPONSE_TOOLS = [{"type": "function", **t["function"]} for t in TOOLS]


@pytest.mark.parametrize("model", BACKENDS)
def test_a_response_is_the_chat_answer_to_the_same_conversation(client, model):
    chat = client.chat.completions.create(
        model=model, max_tokens=24, temperature=0, messages=[
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"}])
    response = client.responses.create(
        model=model, instructions="You answer in one short sentence.",
        input="What is the capital of France?", max_output_tokens=24,
        temperature=0, metadata={"case": "capital"})
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.output_text == chat.choices[0].message.content
    assert response.metadata == {"case": "capital"}
    assert response.usage.input_tokens == chat.usage.prompt_tokens
    assert response.usage.output_tokens == chat.usage.completion_tokens
    assert response.status == ("incomplete" if chat.choices[0].finish_reason == "length"
                               else "completed")


def test_a_streamed_response_sends_the_events_in_order(client):
    whole = client.responses.create(model=TORCH, input="Name three colours.",
                                    max_output_tokens=20, temperature=0)
    events = list(client.responses.create(model=TORCH, input="Name three colours.",
                                          max_output_tokens=20, temperature=0,
                                          stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done",
                            "response.output_item.done"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole.output_text == events[-1].response.output_text
    assert (kinds[-1] == "response.incomplete") == (whole.status == "incomplete")
    # the SDK's own stream helper assembles the same final response (it wants a
    # response.completed: an answer given room to end)
    kwargs = {"model": TORCH, "input": "Say hello.", "max_output_tokens": 200,
              "temperature": 0}
    ended = client.responses.create(**kwargs)
    assert ended.status == "completed"
    with client.responses.stream(**kwargs) as stream:
        assert stream.get_final_response().output_text == ended.output_text


@pytest.mark.parametrize("model", BACKENDS)
def test_a_response_calls_a_required_tool_and_takes_its_output_back(client, model):
    ask = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    first = client.responses.create(model=model, input=ask, tools=RESPONSE_TOOLS,
                                    tool_choice={"type": "function", "name": "get_weather"},
                                    temperature=0, max_output_tokens=80)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].call_id.startswith("call_")
    jsonschema.validate(json.loads(calls[0].arguments), PARAMETERS["get_weather"])
    second = client.responses.create(
        model=model, tools=RESPONSE_TOOLS, temperature=0, max_output_tokens=30,
        input=[*ask, {"type": "function_call", "call_id": calls[0].call_id,
                      "name": calls[0].name, "arguments": calls[0].arguments},
               {"type": "function_call_output", "call_id": calls[0].call_id,
                "output": '{"temperature": 21, "sky": "sunny"}'}])
    assert second.output
    assert second.usage.input_tokens > first.usage.input_tokens + 10


def test_streamed_function_calls_match_the_whole_response(client):
    kwargs = {"model": TORCH, "input": "What time is it in Tokyo?", "tools": RESPONSE_TOOLS,
              "tool_choice": "required", "temperature": 0, "max_output_tokens": 80}
    whole = [(i.name, json.loads(i.arguments))
             for i in client.responses.create(**kwargs).output if i.type == "function_call"]
    events = list(client.responses.create(stream=True, **kwargs))
    done = [(e.name, json.loads(e.arguments)) for e in events
            if e.type == "response.function_call_arguments.done"]
    assert done == whole and whole
    assert [(i.name, json.loads(i.arguments)) for i in events[-1].response.output
            if i.type == "function_call"] == whole


def test_a_response_in_a_json_schema_validates(client):
    response = client.responses.create(
        model=TORCH, input="Tell me about Anna, 31, who lives in Rome.", temperature=0,
        max_output_tokens=80, text={"format": {"type": "json_schema", "name": "person",
                                               "schema": PERSON, "strict": True}})
    jsonschema.validate(json.loads(response.output_text), PERSON)
    assert response.text.format.type == "json_schema"


def test_what_the_responses_route_cannot_honour_is_a_400(server):
    cases = [({"previous_response_id": "resp_1"}, "previous_response_id"),
             ({"reasoning": {"effort": "high"}}, "reasoning"),
             ({"input": []}, "input"),
             ({"tools": [{"type": "web_search"}]}, "tools")]
    with httpx.Client(base_url=server, timeout=60) as http:
        for extra, field in cases:
            got = http.post("/v1/responses", json={"model": TORCH, "input": "hi", **extra})
            assert got.status_code == 400, (extra, got.text)
            error = got.json()["error"]
            assert field in (error.get("param") or "") + error["message"], (extra, error)
        canary = http.post("/v1/responses", json={"model": TORCH, "input": "hi",
                                                  "max_output_tokens": 2})
        assert canary.status_code == 200 and canary.json()["output"]
