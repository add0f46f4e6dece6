"""``hfserve skill new`` for a tiny BERT classifier and a tiny GPT-2 (built here, MiniLM's
tokenizer), and for one tiny model of every other family a template exists for (T5, ViT,
CLIP, Whisper, Wav2Vec2 CTC, BERT tagger and masked LM, built by those families' own
tests): the skill files it writes load, and the tests it writes beside them pass (each
serves a tiny random copy of the architecture through the skill in a hfserve app and
compares with transformers' pipeline or the model's own generate)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from hfserve.cli import main

from .conftest import MINILM
from .test_classify import tiny_tagger
from .test_speech import tiny_ctc, tiny_whisper
from .test_text2text import tiny_masked_lm, tiny_t5
from .test_vision import tiny_vit
from .test_vision_families import tiny_clip

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
          "-o", "asyncio_default_fixture_loop_scope=function"]


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
    ran = subprocess.run([*PYTEST, f"test_{stem}.py"], cwd=out, capture_output=True, text=True,
                         timeout=900, env=env)
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "2 passed" in ran.stdout


def test_a_task_the_architecture_cannot_do_is_refused(tmp_path) -> None:
    folder = tiny_gpt2(tmp_path / "model")
    done = subprocess.run([sys.executable, "-m", "hfserve", "skill", "new", str(folder),
                           "--task", "text-classification", "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "does not do 'text-classification'" in done.stderr


# stem -> (builder, --task or None for the model's own); two BERTs, so named apart.
FAMILIES = {
    "hf_t5": (tiny_t5, None),
    "hf_vit": (tiny_vit, None),
    "hf_clip": (tiny_clip, None),
    "hf_whisper": (tiny_whisper, None),
    "hf_wav2vec2": (tiny_ctc, None),
    "hf_bert_ner": (tiny_tagger, None),
    "hf_bert_mlm": (tiny_masked_lm, "fill-mask"),
}
TASKS = {"hf_t5": "text2text-generation", "hf_vit": "image-classification",
         "hf_clip": "zero-shot-image-classification",
         "hf_whisper": "automatic-speech-recognition",
         "hf_wav2vec2": "automatic-speech-recognition", "hf_bert_ner": "token-classification",
         "hf_bert_mlm": "fill-mask"}


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """Every family's files written by the CLI's entry function into one folder, and their
    tests run there by one pytest: (the folder, {stem: {test name: outcome}})."""
    if not MINILM.exists():
        pytest.skip("the MiniLM model folder (its tokenizer) is not installed")
    root = tmp_path_factory.mktemp("families")
    out = root / "skills"
    for stem, (build, task) in FAMILIES.items():
        folder = build(root / stem)
        argv = ["skill", "new", str(folder), "--out", str(out), "--name", stem]
        assert main(argv + (["--task", task] if task else [])) == 0
    report = root / "report.xml"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run([*PYTEST, f"--junitxml={report}", "."], cwd=out, capture_output=True,
                         text=True, timeout=900, env=env)
    assert report.exists(), ran.stdout[-3000:] + ran.stderr[-3000:]
    results: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        bad = [c for c in case if c.tag in ("failure", "error", "skipped")]
        outcome = f"{bad[0].tag}: {(bad[0].text or bad[0].get('message', ''))[-3000:]}" \
            if bad else "passed"
        module = case.get("classname").rsplit(".", 1)[-1]
        results.setdefault(module, {})[case.get("name")] = outcome
    return out, results


@pytest.mark.parametrize("stem", list(FAMILIES))
def test_every_family_has_a_skill_whose_test_passes(families, stem) -> None:
    from hfserve.plugins.files import load_module
    from hfserve.plugins.generator import KINDS

    out, results = families
    assert results.get(f"test_{stem}") == {
        "test_the_skill_file_serves_the_model": "passed",
        f"test_{stem}_answers_as_transformers": "passed"}, results.get(f"test_{stem}")
    kind = KINDS[TASKS[stem]]
    base = getattr(importlib.import_module(kind.base_module), kind.base_class)
    skill = getattr(load_module(out / f"{stem}.py"),
                    "".join(p.capitalize() for p in stem.split("_")) + "Skill")
    assert issubclass(skill, base) and skill.task == base.task == TASKS[stem]
