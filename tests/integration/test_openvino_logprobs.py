"""Prompt logprobs (completions ``echo``) and ``top_logprobs`` on the OpenVINO backend, the
default for decoder models on a CPU: its pipeline reports the chosen token's logprob only,
the rest comes from a scoring forward of the same IR. Checked against the torch backend on
the same GGUF, and driven by lm-eval's ``local-completions`` model as an evaluation runs."""

from __future__ import annotations

import json

import pytest

from .conftest import CHAT, CHAT_OV

PROMPTS = ["The capital of France is", "One, two, three, four,"]
# float32 OpenVINO against transformers' float32 forward of the same GGUF, on these prompts
# and the lm-eval items: at most 6e-5 apart (chosen tokens and top-5 values); 5e-4 leaves
# room for other CPUs' kernels.
TOLERANCE = 5e-4

ITEMS = [
    {"question": "The capital of France is", "choices": ["Paris", "Berlin", "Madrid"],
     "answer": 0},
    {"question": "Two plus two equals", "choices": ["three", "four", "five"], "answer": 1},
    {"question": "On a clear day the sky is", "choices": ["green", "red", "blue"],
     "answer": 2},
]


def echo(client, model: str, prompt, max_tokens: int = 0, logprobs: int = 3):
    got = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                    echo=True, logprobs=logprobs, temperature=0)
    return got.choices[0].logprobs


@pytest.mark.parametrize("prompt", PROMPTS)
def test_echo_scores_the_prompt_as_the_torch_backend_does(loose_client, prompt):
    ov, torch = echo(loose_client, CHAT_OV, prompt), echo(loose_client, CHAT, prompt)
    assert ov.tokens == torch.tokens
    assert ov.token_logprobs[0] is None and ov.top_logprobs[0] is None
    assert ov.token_logprobs[1:] == pytest.approx(torch.token_logprobs[1:], abs=TOLERANCE)
    for mine, theirs in zip(ov.top_logprobs[1:], torch.top_logprobs[1:], strict=True):
        assert len(mine) == 3
        # Values, not keys: two alternatives within the tolerance may swap places.
        assert sorted(mine.values()) == pytest.approx(sorted(theirs.values()), abs=TOLERANCE)


def test_echo_with_one_generated_token_scores_it_too(loose_client):
    scored = echo(loose_client, CHAT_OV, PROMPTS[0], logprobs=1)
    both = echo(loose_client, CHAT_OV, PROMPTS[0], max_tokens=1, logprobs=1)
    assert both.tokens[:-1] == scored.tokens
    assert both.token_logprobs[:-1] == scored.token_logprobs     # the same forward
    (best, value), = both.top_logprobs[-1].items()
    assert best == both.tokens[-1]                                # greedy: the likeliest
    # With alternatives, the chosen token's logprob comes from the same scoring pass.
    assert value == both.token_logprobs[-1]


def test_chat_top_logprobs_lead_with_the_greedy_token(client):
    ask = {"model": CHAT_OV, "temperature": 0, "max_tokens": 8, "logprobs": True,
           "top_logprobs": 4,
           "messages": [{"role": "user", "content": "Name a colour."}]}
    content = client.chat.completions.create(**ask).choices[0].logprobs.content
    assert len(content) == 8
    for token in content:
        assert len(token.top_logprobs) == 4
        assert token.top_logprobs[0].token == token.token
        assert token.top_logprobs[0].logprob == token.logprob
        values = [t.logprob for t in token.top_logprobs]
        assert values == sorted(values, reverse=True)
    streamed = [t for chunk in client.chat.completions.create(**ask, stream=True)
                if chunk.choices and chunk.choices[0].logprobs
                for t in chunk.choices[0].logprobs.content]
    assert [(t.token, [a.token for a in t.top_logprobs]) for t in streamed] == \
        [(t.token, [a.token for a in t.top_logprobs]) for t in content]


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm_eval_task")
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    (folder / "tiny_mc.yaml").write_text(
        "task: hfserve_tiny_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {json.dumps(str(data))}}}}}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{question}}'\n"
        "doc_to_choice: '{{choices}}'\n"
        "doc_to_target: answer\n"
        "metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]\n")
    return folder


def test_lm_eval_scores_the_same_at_any_concurrency(server, loose_client, tiny_task,
                                                    monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # The tokenizer hfserve rebuilt from the GGUF file, as lm-eval loads one from a folder.
    tokenizer, = (server["tmp"] / "cache" / "tokenizer").glob("SmolLM2-135M-Instruct*")

    def run(concurrency: int) -> dict[tuple[int, str], tuple[float, bool]]:
        out = lm_eval.simple_evaluate(
            model="local-completions", tasks=["hfserve_tiny_mc"], log_samples=True,
            task_manager=TaskManager(include_path=str(tiny_task)), bootstrap_iters=0,
            model_args={"base_url": f"{server['base']}/v1/completions", "model": CHAT_OV,
                        "tokenizer_backend": "huggingface", "tokenizer": str(tokenizer),
                        "num_concurrent": concurrency, "max_retries": 1})
        return {(s["doc_id"], arguments[1]): tuple(answer[0])
                for s in out["samples"]["hfserve_tiny_mc"]
                for arguments, answer in zip(s["arguments"], s["resps"], strict=True)}

    alone, together = run(1), run(16)
    assert len(alone) == sum(len(item["choices"]) for item in ITEMS)
    assert together == alone
    assert alone[(0, " Paris")][0] > alone[(0, " Berlin")][0]

    # The same sums from /v1/completions echo answers, the continuation's tokens after the
    # context's as lm-eval splits them.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    for (doc, continuation), (loglikelihood, greedy) in alone.items():
        context = ITEMS[doc]["question"]
        whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
        start = len(tok(context, add_special_tokens=False)["input_ids"])
        got = echo(loose_client, CHAT_OV, whole, logprobs=1)
        assert sum(got.token_logprobs[start:]) == loglikelihood
        assert greedy == all(got.token_logprobs[i] == max(got.top_logprobs[i].values())
                             for i in range(start, len(whole)))
