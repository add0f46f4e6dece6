"""``hfserve skill new`` for a tiny BERT classifier and a tiny GPT-2 (built here, MiniLM's
tokenizer): the skill files it writes load, and the tests it writes beside them pass (each
serves a tiny random copy of the architecture through the skill in a hfserve app and
compares with transformers' pipeline)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import MINILM


def tiny_bert_classifier(folder):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    labels = {0: "negative", 1: "positive"}
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(MINILM)).save_pretrained(folder)
    return folder


def tiny_gpt2(folder):
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(MINILM))
    config = GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=2,
                        n_positions=128, eos_token_id=tok.vocab_size - 1,
                        bos_token_id=tok.vocab_size - 1)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("build", "stem", "task"), [
    (tiny_bert_classifier, "hf_bert", "text-classification"), (tiny_gpt2, "hf_gpt2", None)])
def test_generated_skill_and_its_test_pass(tmp_path, build, stem, task) -> None:
    folder = build(tmp_path / "model")
    out = tmp_path / "skills"
    command = [sys.executable, "-m", "hfserve", "skill", "new", str(folder), "--out", str(out)]
    done = subprocess.run(command + (["--task", task] if task else []), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(out / f"{stem}.py"), str(out / f"test_{stem}.py")]
    skill = (out / f"{stem}.py").read_text()
    assert "ModelUnavailable" in skill and "class Hf" in skill
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-o", "asyncio_default_fixture_loop_scope=function",
                          f"test_{stem}.py"], cwd=out, capture_output=True, text=True,
                         timeout=900, env=env)
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "2 passed" in ran.stdout


def test_a_task_the_architecture_cannot_do_is_refused(tmp_path) -> None:
    folder = tiny_gpt2(tmp_path / "model")
    done = subprocess.run([sys.executable, "-m", "hfserve", "skill", "new", str(folder),
                           "--task", "text-classification", "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "does not do 'text-classification'" in done.stderr
