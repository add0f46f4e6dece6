"""TGI's routes on the real SmolLM2 (eager torch and OpenVINO in a model process), with
huggingface_hub's InferenceClient (which speaks TGI) as the client: greedy text equal to
/v1/completions', streamed tokens that add up, details, and TGI's error body."""

from __future__ import annotations

import pytest

from .conftest import CHAT, CHAT_OV

PROMPT = "The capital of France is"


@pytest.mark.parametrize("model", [CHAT, CHAT_OV])
def test_generate_equals_greedy_completions_and_streams_the_same(hub_client, client, model):
    tgi = hub_client(model=model)
    want = client.completions.create(model=model, prompt=PROMPT, max_tokens=8,
                                     temperature=0).choices[0].text
    out = tgi.text_generation(PROMPT, max_new_tokens=8, details=True)
    assert out.generated_text == want
    assert out.details.generated_tokens == 8 and out.details.finish_reason == "length"
    assert len(out.details.tokens) == 8
    assert all(t.logprob is not None and t.logprob <= 0 for t in out.details.tokens)
    events = list(tgi.text_generation(PROMPT, max_new_tokens=8, stream=True, details=True))
    assert len(events) == 8
    assert all(e.generated_text is None for e in events[:-1])
    assert events[-1].generated_text == want
    assert events[-1].details.finish_reason == "length"
    assert [e.token.id for e in events] == [t.id for t in out.details.tokens]
    full = tgi.text_generation(PROMPT, max_new_tokens=8, return_full_text=True)
    assert full == PROMPT + want


def test_generate_route_and_tgi_errors(http):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 4}, "model": CHAT}
    ok = http.post("/generate", json=body)
    assert ok.status_code == 200 and set(ok.json()) == {"generated_text"}
    for bad, status in (({"inputs": PROMPT}, 422),                  # several chat models
                        ({**body, "parameters": {"repetition_penalty": 1.3}}, 422),
                        ({**body, "parameters": {"max_new_tokens": 100_000}}, 422),
                        ({**body, "model": "nope"}, 404)):
        response = http.post("/generate", json=bad)
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error", "error_type"}


def test_info_is_tgis_for_a_generative_model(http):
    body = http.get("/info", headers={"X-Model": CHAT}).json()
    assert body["model_id"] == CHAT and body["model_pipeline_tag"] == "text-generation"
    assert body["max_total_tokens"] == body["max_input_tokens"] + 1 > 1
    assert body["max_stop_sequences"] == 16 and body["max_best_of"] == 1
    assert isinstance(body["version"], str) and body["max_concurrent_requests"] >= 1
