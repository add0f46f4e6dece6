"""Vision-language chat on a tiny random LLaVA built here (a small CLIP vision tower and a
small Llama, MiniLM's tokenizer with an image token), served in the server process, in a
model process of its own and in fixed KV-cache slots, through /v1/chat/completions with the
real openai SDK: greedy text for a message with an image equals transformers' own
``generate`` on the processor's inputs, streamed too, and for concurrent requests with
different images; bad images are clear 400s."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from .conftest import MINILM, _acheck_clean, _sync_http, launch, stop
from .images import data_url, decoded, png_bytes, truncated

MAX_TOKENS = 8
MODELS = ("llava", "llava-process", "llava-slots")
# A llava-hf-style template that also takes plain string contents.
TEMPLATE = ("{% for m in messages %}{{ m['role'].upper() }}: {% if m['content'] is string %}"
            "{{ m['content'] }}{% else %}{% for c in m['content'] %}"
            "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}"
            "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
            "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def _build(folder):
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = AutoTokenizer.from_pretrained(str(MINILM))
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vocab = len(tok)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                              crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=TEMPLATE)
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       image_size=32, patch_size=8, projection_dim=32),
        # An end token this random model never picks, so every answer runs to its limit.
        text_config=LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, max_position_embeddings=512,
                                eos_token_id=vocab - 2, pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-2)
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("llava") / "llava")


@pytest.fixture(scope="module")
def base(folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llava-server")
    common = {"source": str(folder), "dtype": "float32", "threads": 1, "backend": "torch",
              "max_concurrent": 4, "image_url_hosts": ["images.invalid"]}
    config = {"cache_dir": str(tmp / "cache"), "models": [
        {"name": "llava", "own_process": False, **common},
        {"name": "llava-process", "own_process": True, **common},
        # Fixed KV-cache slots (what CUDA graphs replay on a GPU; eager here), and text
        # prompts over 16 tokens prefilled in parts (a prompt with images goes whole).
        {"name": "llava-slots", "own_process": False, "cuda_graphs": True,
         "max_prefill_tokens": 16, **common}]}
    proc, url, log = launch(config, tmp)
    try:
        yield url
    finally:
        stop(proc, log)


@pytest.fixture(scope="module")
def reference(folder):
    """transformers' greedy answer for ``text`` with the PNG ``blob`` (or none), and the
    prompt's length, as the model card's processor calls give them."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(str(folder))
    model = LlavaForConditionalGeneration.from_pretrained(str(folder)).eval()

    def answer(text: str, blob: bytes | None = None) -> tuple[str, int]:
        parts = [{"type": "text", "text": text}] + ([{"type": "image"}] if blob else [])
        prompt = processor.apply_chat_template([{"role": "user", "content": parts}],
                                               add_generation_prompt=True)
        inputs = processor(images=decoded([blob]) if blob else None, text=prompt,
                           return_tensors="pt")
        extra = {"pixel_values": inputs["pixel_values"]} if blob else {}
        with torch.inference_mode():
            out = model.generate(input_ids=inputs["input_ids"],
                                 attention_mask=inputs["attention_mask"], **extra,
                                 max_new_tokens=MAX_TOKENS, do_sample=False)
        width = inputs["input_ids"].shape[1]
        return processor.tokenizer.decode(out[0, width:], skip_special_tokens=True), width

    return answer


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0,
                         _strict_response_validation=True, timeout=120,
                         http_client=_sync_http())


def _message(text: str, blob: bytes | None = None, url: str | None = None) -> list[dict]:
    parts: list[dict] = [{"type": "text", "text": text}]
    if blob is not None or url is not None:
        parts.append({"type": "image_url", "image_url": {"url": url or data_url(blob)}})
    return [{"role": "user", "content": parts}]


@pytest.mark.parametrize("model", MODELS)
def test_image_chat_equals_generate_streamed_or_not(base, reference, model):
    blob = png_bytes(1)
    want, prompt_len = reference("what is in this picture?", blob)
    assert want and reference("what is in this picture?", png_bytes(2))[0] != want
    client = _client(base)
    reply = client.chat.completions.create(model=model, temperature=0, max_tokens=MAX_TOKENS,
                                           messages=_message("what is in this picture?", blob))
    assert reply.choices[0].message.content == want
    # The image token became the vision tower's 16 features.
    assert reply.usage.prompt_tokens == prompt_len
    assert reply.usage.completion_tokens == MAX_TOKENS
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in
                       client.chat.completions.create(
                           model=model, temperature=0, max_tokens=MAX_TOKENS, stream=True,
                           messages=_message("what is in this picture?", blob))
                       if chunk.choices)
    assert streamed == want
    # Two greedy choices of one prefill, with their tokens' logprobs.
    both = client.chat.completions.create(model=model, temperature=0, max_tokens=MAX_TOKENS,
                                          n=2, logprobs=True,
                                          messages=_message("what is in this picture?", blob))
    assert [c.message.content for c in both.choices] == [want, want]
    assert len(both.choices[0].logprobs.content) == MAX_TOKENS


@pytest.mark.parametrize("model", MODELS)
def test_concurrent_images_each_get_their_own_answer(base, reference, model):
    blobs = [png_bytes(seed) for seed in (3, 4, 5)]
    wants = [reference("describe it", blob)[0] for blob in blobs]
    text_want = reference("say something")[0]
    assert len(set(wants)) == len(wants)

    async def together() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0,
                                    timeout=120, http_client=httpx.AsyncClient(
                                        timeout=120, event_hooks={"response": [_acheck_clean]}))
        calls = [client.chat.completions.create(
            model=model, temperature=0, max_tokens=MAX_TOKENS,
            messages=_message("describe it", blob)) for blob in blobs]
        # A text-only chat in the same batch.
        calls.append(client.chat.completions.create(
            model=model, temperature=0, max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": "say something"}]))
        replies = await asyncio.gather(*calls)
        return [r.choices[0].message.content for r in replies]

    assert asyncio.run(together()) == [*wants, text_want]


def test_text_only_chat(base, reference):
    want, prompt_len = reference("hello there friend")
    reply = _client(base).chat.completions.create(
        model="llava", temperature=0, max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": "hello there friend"}])
    assert reply.choices[0].message.content == want
    assert reply.usage.prompt_tokens == prompt_len


@pytest.mark.parametrize("model", MODELS[:2])   # the codec's work: in or out of process
def test_bad_images_are_clear_400s_and_the_model_keeps_serving(base, reference, model):
    client = _client(base)
    cases = [
        (_message("look", url="http://127.0.0.1:9/cat.png"), "not allowed"),
        (_message("look", url=truncated(png_bytes(6))), "truncated or corrupt"),
        (_message("look", url="data:image/png;base64,!!!not base64!!!"), "base64"),
        (_message("look <image> twice", png_bytes(6)), "image tokens"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {
            "data": "UklGRg==", "format": "wav"}}]}], "text and image content"),
    ]
    for messages, words in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=model, max_tokens=MAX_TOKENS,
                                           messages=messages)
        assert caught.value.status_code == 400
        assert words in caught.value.body["message"], caught.value.body
        assert caught.value.body["param"] == "messages"
    blob = png_bytes(7)
    reply = client.chat.completions.create(model=model, temperature=0, max_tokens=MAX_TOKENS,
                                           messages=_message("and now?", blob))
    assert reply.choices[0].message.content == reference("and now?", blob)[0]
