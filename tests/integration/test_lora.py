"""LoRA adapters on the torch generation skill, on a tiny random Llama built here (MiniLM's
tokenizer) and two adapters made with peft (random, non-zero B matrices; different ranks and
target layers). Greedy text through the openai SDK equals peft's merged model's ``generate``
for each adapter, also when both adapters and the base model share a batch; /v1/models lists
the adapters with their parent; the admin routes add and remove one at run time."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from .conftest import MINILM, check_clean, launch, stop

PROMPTS = ["hello there friend", "a much longer prompt about the weather in spring and rain",
           "the cat sat on the mat"]
MAX_TOKENS = 8
TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")
ADAPTERS = {  # name -> (rank, alpha, target layers, seed)
    "terse": (4, 8, ["q_proj", "v_proj"], 1),
    "verbose": (8, 16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"], 2),
    "late": (2, 4, ["o_proj", "down_proj"], 3),
}


def _build(root):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(MINILM))
    tok.chat_template = TEMPLATE
    vocab = tok.vocab_size
    torch.manual_seed(0)
    # An end token these random models never pick, so every answer runs to its limit.
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                         max_position_embeddings=256, eos_token_id=vocab - 1,
                         pad_token_id=tok.pad_token_id)
    base = root / "llama"
    LlamaForCausalLM(config).eval().save_pretrained(base)
    tok.save_pretrained(base)
    for name, (rank, alpha, targets, seed) in ADAPTERS.items():
        torch.manual_seed(seed)
        model = get_peft_model(LlamaForCausalLM.from_pretrained(base),
                               LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets))
        with torch.no_grad():
            for param_name, param in model.named_parameters():
                if "lora_B" in param_name:   # peft starts B at zero: the adapter would be a no-op
                    param.normal_(0, 0.5)
        model.save_pretrained(root / name)
    return base


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    return root, _build(root)


@pytest.fixture(scope="module")
def served(folders, tmp_path_factory):
    root, base = folders
    tmp = tmp_path_factory.mktemp("lora-server")
    config = {"cache_dir": str(tmp / "cache"), "model_roots": [str(root)], "models": [
        {"name": "llama", "source": str(base), "dtype": "float32", "threads": 1,
         "backend": "torch", "own_process": False, "max_concurrent": 8,
         # The longer prompts go in parts (chunked prefill), the short ones whole.
         "max_prefill_tokens": 8,
         "adapters": {"terse": str(root / "terse"), "verbose": str(root / "verbose")}}]}
    proc, url, log = launch(config, tmp)
    try:
        yield url
    finally:
        stop(proc, log)


def _reference(root, base, adapter: str | None, ids: list[int]) -> list[int]:
    """Greedy tokens of the merged model (``merge_and_unload``), or of the base model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base)).eval()
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(root / adapter)).merge_and_unload()
    prompt = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                             max_new_tokens=MAX_TOKENS, do_sample=False)
    return out[0, prompt.shape[1]:].tolist()


@pytest.fixture(scope="module")
def expected(folders):
    """The reference text of each (adapter, prompt), adapters ``None`` (the base) to late."""
    from transformers import AutoTokenizer

    root, base = folders
    tok = AutoTokenizer.from_pretrained(str(base))
    out = {}
    for adapter in (None, *ADAPTERS):
        for prompt in PROMPTS:
            tokens = _reference(root, base, adapter, tok(prompt)["input_ids"])
            out[adapter, prompt] = tok.decode(tokens, skip_special_tokens=True)
        # As the server renders a chat: the template's text, without added special tokens.
        chat = tok.apply_chat_template([{"role": "user", "content": PROMPTS[0]}],
                                       add_generation_prompt=True, tokenize=False)
        tokens = _reference(root, base, adapter,
                            tok(chat, add_special_tokens=False)["input_ids"])
        out[adapter, "chat"] = tok.decode(tokens, skip_special_tokens=True)
    return out


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0,
                         http_client=httpx.Client(timeout=120,
                                                  event_hooks={"response": [check_clean]}))


def _complete(client, model: str, prompt: str) -> str:
    return client.completions.create(model=model, prompt=prompt, max_tokens=MAX_TOKENS,
                                     temperature=0).choices[0].text


def test_each_adapter_equals_its_merged_model(served, expected):
    client = _client(served)
    # The adapters change the answers: the comparisons below could fail.
    assert len({expected[a, PROMPTS[1]] for a in (None, "terse", "verbose")}) == 3
    for prompt in PROMPTS:
        assert _complete(client, "llama", prompt) == expected[None, prompt]
        assert _complete(client, "terse", prompt) == expected["terse", prompt]
        assert _complete(client, "llama:verbose", prompt) == expected["verbose", prompt]
    for model, adapter in (("llama", None), ("terse", "terse"), ("llama:verbose", "verbose")):
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPTS[0]}],
            max_tokens=MAX_TOKENS, temperature=0)
        assert chat.model == model
        assert chat.choices[0].message.content == expected[adapter, "chat"]


def test_two_adapters_and_the_base_in_one_batch(served, expected):
    client = openai.AsyncOpenAI(base_url=f"{served}/v1", api_key="none", max_retries=0)
    asks = [(model, prompt) for prompt in PROMPTS
            for model in ("llama", "terse", "llama:verbose")] * 2

    async def one(model: str, prompt: str) -> str:
        out = await client.completions.create(model=model, prompt=prompt,
                                              max_tokens=MAX_TOKENS, temperature=0)
        return out.choices[0].text

    async def streamed(model: str, prompt: str) -> str:
        stream = await client.completions.create(model=model, prompt=prompt, stream=True,
                                                 max_tokens=MAX_TOKENS, temperature=0)
        return "".join([c.choices[0].text async for c in stream if c.choices])

    async def all_at_once():
        try:
            return await asyncio.gather(*(one(m, p) for m, p in asks),
                                        *(streamed(m, p) for m, p in asks))
        finally:
            await client.close()

    answers = asyncio.run(all_at_once())
    adapter = {"llama": None, "terse": "terse", "llama:verbose": "verbose"}
    assert answers == [expected[adapter[m], p] for m, p in asks] * 2


def test_models_lists_adapters_with_their_parent(served):
    client = _client(served)
    cards = {m.id: m for m in client.models.list().data}
    for name in ("terse", "verbose"):
        assert cards[name].model_dump()["parent"] == "llama"
    assert "parent" not in cards["llama"].model_dump()
    assert client.models.retrieve("terse").model_dump()["parent"] == "llama"


def test_unknown_adapters_are_404(served):
    client = _client(served)
    for model in ("llama:nope", "nope"):
        with pytest.raises(openai.NotFoundError) as err:
            _complete(client, model, PROMPTS[0])
        assert err.value.body["code"] == "model_not_found"
        assert err.value.body["param"] == "model"


def test_admin_adds_and_removes_an_adapter_at_run_time(served, folders, expected):
    root, _ = folders
    client = _client(served)
    with httpx.Client(base_url=served, timeout=120,
                      event_hooks={"response": [check_clean]}) as http:
        with pytest.raises(openai.NotFoundError):
            _complete(client, "late", PROMPTS[0])
        added = http.post("/v1/models/llama/adapters",
                          json={"name": "late", "path": str(root / "late")})
        assert added.status_code == 201, added.text
        assert added.json()["parent"] == "llama"
        assert _complete(client, "llama:late", PROMPTS[1]) == expected["late", PROMPTS[1]]
        assert _complete(client, "terse", PROMPTS[1]) == expected["terse", PROMPTS[1]]
        assert "late" in {m.id for m in client.models.list().data}

        again = http.post("/v1/models/llama/adapters",
                          json={"name": "late", "path": str(root / "late")})
        assert again.status_code == 409
        outside = http.post("/v1/models/llama/adapters",
                            json={"name": "x", "path": str(MINILM)})
        assert outside.status_code == 403
        not_lora = http.post("/v1/models/llama/adapters",
                             json={"name": "x", "path": str(root / "llama")})
        assert not_lora.status_code == 400
        assert not_lora.json()["error"]["param"] == "path"

        assert http.delete("/v1/models/llama/adapters/late").status_code == 204
        with pytest.raises(openai.NotFoundError):
            _complete(client, "late", PROMPTS[1])
        assert "late" not in {m.id for m in client.models.list().data}
        gone = http.delete("/v1/models/llama/adapters/late")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "model_not_found"
        # The others still answer as before.
        assert _complete(client, "terse", PROMPTS[1]) == expected["terse", PROMPTS[1]]
        assert _complete(client, "llama", PROMPTS[1]) == expected[None, PROMPTS[1]]
