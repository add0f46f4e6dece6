"""Encoder-decoder generation (T5, BART) through /v1/completions and TGI's routes, and
fill-mask through /v1/infer, on tiny random models built here (MiniLM's tokenizer): greedy
text equal to transformers' ``generate``, streamed tokens that add up to it, the same text
alone and among concurrent requests, and masks filled as ``pipeline("fill-mask")`` fills them."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import openai
import pytest

from .conftest import MINILM, launch, stop

PROMPTS = ["translate English to German: The house is wonderful.",
           "summarize: the quick brown fox jumps over the lazy dog again and again", "hi"]
MASKED = ["The capital of France is [MASK].", "[MASK] is a [MASK] day."]


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MINILM))


def tiny_t5(folder):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    tok = _tokenizer()
    config = T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                      num_heads=4, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                      decoder_start_token_id=tok.pad_token_id)
    T5ForConditionalGeneration(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_bart(folder):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(2)           # a seed whose random model says more than its end token
    tok = _tokenizer()
    config = BartConfig(vocab_size=tok.vocab_size, d_model=32, encoder_layers=2,
                        decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                        encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                        eos_token_id=tok.sep_token_id, decoder_start_token_id=tok.sep_token_id,
                        forced_eos_token_id=None, forced_bos_token_id=None)
    BartForConditionalGeneration(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_masked_lm(folder):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(2)
    tok = _tokenizer()
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertForMaskedLM(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("text2text")
    return {"t5": tiny_t5(root / "t5"), "bart": tiny_bart(root / "bart"),
            "mlm": tiny_masked_lm(root / "mlm")}


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text2text-server")
    config = {"cache_dir": str(tmp / "cache"), "models": [
        {"name": name, "source": str(folder), "dtype": "float32", "threads": 1}
        for name, folder in models.items()]}
    # A bare masked LM serves embeddings by default (as TEI does); fill-mask when asked.
    config["models"][2]["task"] = "fill-mask"
    # The same folder for embeddings (its default) and fill-mask, one skill for each.
    config["models"].append({"name": "mlm-both", "source": str(models["mlm"]),
                             "dtype": "float32", "threads": 1, "tasks": ["fill-mask"]})
    # Fill-mask runs on OpenVINO by default where it is installed; eager torch when asked.
    config["models"].append({"name": "mlm-torch", "source": str(models["mlm"]),
                             "task": "fill-mask", "backend": "torch", "dtype": "float32",
                             "threads": 1})
    proc, url, log = launch(config, tmp)
    try:
        yield url
    finally:
        stop(proc, log)


def greedy(folder, prompt: str, max_new_tokens: int) -> tuple[str, int]:
    import torch
    from transformers import AutoModelForSeq2SeqLM

    tok = _tokenizer()
    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder)).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)[0, 1:]
    generated = [t for t in out.tolist() if t != tok.pad_token_id]
    if tok.sep_token_id in generated:            # the end: not counted as a completion token
        generated = generated[:generated.index(tok.sep_token_id)]
    return tok.decode(generated, skip_special_tokens=True), len(generated)


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_completions_equal_generate_alone_and_among_others(base, models, name):
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
    wants = [greedy(models[name], p, 12) for p in PROMPTS]
    for prompt, (text, count) in zip(PROMPTS, wants, strict=True):
        got = client.completions.create(model=name, prompt=prompt, max_tokens=12,
                                        temperature=0)
        assert got.choices[0].text == text
        assert got.usage.completion_tokens == count
        assert got.choices[0].finish_reason == ("length" if count == 12 else "stop")

    async def together():
        aclient = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
        answers = await asyncio.gather(*[
            aclient.completions.create(model=name, prompt=p, max_tokens=12, temperature=0)
            for p in PROMPTS * 3])
        return [a.choices[0].text for a in answers]

    assert asyncio.run(together()) == [text for text, _ in wants] * 3


def test_tgi_stream_adds_up_and_tasks_are_listed(base, models):
    http = httpx.Client(base_url=base, timeout=60)
    body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 10, "details": True},
            "model": "t5"}
    whole = http.post("/generate", json=body).json()
    assert whole["generated_text"] == greedy(models["t5"], PROMPTS[0], 10)[0]
    with http.stream("POST", "/generate_stream", json=body) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert events and '"generated_text"' in events[-1]
    card = http.get("/v1/models/t5").json()
    assert card["family"] == "encoder-decoder"
    assert set(card["tasks"]) >= {"text2text-generation", "text-generation"}
    chat = http.post("/v1/chat/completions", json={
        "model": "t5", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 400 and "chat template" in chat.json()["error"]["message"]


@pytest.mark.parametrize(("model", "backend"), [("mlm", "openvino"), ("mlm-torch", "torch")])
def test_fill_mask_equals_the_pipeline(base, models, model, backend):
    from transformers import pipeline

    pipe = pipeline("fill-mask", model=str(models["mlm"]), device="cpu")
    http = httpx.Client(base_url=base, timeout=60)
    assert http.get(f"/v1/models/{model}").json()["backend"] == backend
    one = http.post(f"/v1/infer/{model}", json={"inputs": MASKED[0],
                                                 "parameters": {"top_k": 3}})
    assert one.status_code == 200, one.text
    many = http.post(f"/v1/infer/{model}", json={"inputs": MASKED}).json()
    for got, want in ((one.json(), pipe(MASKED[0], top_k=3)), (many[0], pipe(MASKED[0])),
                      (many[1], pipe(MASKED[1]))):
        flat_got = got if isinstance(got[0], dict) else [g for row in got for g in row]
        flat_want = want if isinstance(want[0], dict) else [w for row in want for w in row]
        assert [g["token"] for g in flat_got] == [w["token"] for w in flat_want]
        assert [g["sequence"] for g in flat_got] == [w["sequence"] for w in flat_want]
        assert np.allclose([g["score"] for g in flat_got], [w["score"] for w in flat_want],
                           atol=1e-4)
    assert len(many[1]) == 2                  # two masks: a ranking for each
    no_mask = http.post(f"/v1/infer/{model}", json={"inputs": "no mask here"})
    assert no_mask.status_code == 400 and "[MASK]" in no_mask.json()["error"]["message"]


def test_one_model_serves_two_tasks_by_two_skills(base, models):
    """A BERT served for embeddings that also lists fill-mask: both under one name, the
    masks filled exactly as by the model served for fill-mask alone, the embeddings those
    of the encoder (mean pooled; compared in direction), and the card listing both tasks."""
    import torch
    from transformers import AutoModel

    http = httpx.Client(base_url=base, timeout=60)
    card = http.get("/v1/models/mlm-both").json()
    assert card["tasks"][:2] == ["embedding", "fill-mask"]
    body = {"inputs": MASKED[0], "parameters": {"top_k": 3}}
    both = http.post("/v1/infer/mlm-both", json={**body, "task": "fill-mask"})
    assert both.status_code == 200, both.text
    assert both.json() == http.post("/v1/infer/mlm", json=body).json()

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
    got = client.embeddings.create(model="mlm-both", input=PROMPTS[:2])
    assert got.model == "mlm-both"
    tok = _tokenizer()
    encoder = AutoModel.from_pretrained(str(models["mlm"])).eval()
    with torch.inference_mode():
        batch = tok(PROMPTS[:2], padding=True, return_tensors="pt")
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        want = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    vectors = np.array([d.embedding for d in got.data])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.allclose(vectors, want.numpy(), atol=1e-4)
    listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert "mlm-both#fill-mask" in listed

    # A task the model does not serve is a clear 400 naming what it does.
    refused = http.post("/v1/infer/t5", json={"inputs": "a [MASK]", "task": "fill-mask"})
    assert refused.status_code == 400
    assert "not fill-mask" in refused.json()["error"]["message"]
