"""``hfserve skill new``: a skill file for a model's architecture, and its test, written from
Jinja2 templates (``templates/``), one entry of ``KINDS`` per task a template exists for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CHECK_EMBEDDING = """\
    got = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS})
    assert got.status_code == 200, got.text
    vectors = np.array([d["embedding"] for d in got.json()["data"]])
    # hfserve pools a plain model's tokens by their mean, as sentence-transformers does.
    want = np.array([np.mean(reference(text)[0], axis=0) for text in TEXTS])
    np.testing.assert_allclose(vectors, want, atol=1e-4)
"""
CHECK_CLASSIFICATION = """\
    got = client.post("/v1/classify", json={"model": "tiny", "input": TEXTS})
    assert got.status_code == 200, got.text
    for row, text in zip(got.json()["data"], TEXTS, strict=True):
        want = {r["label"]: r["score"] for r in reference(text, top_k=None)}
        assert row["label"] == max(want, key=want.get)
        labels = [want[label] for label in sorted(want)]
        names = client.get("/v1/models/tiny").json()["labels"]
        got_scores = dict(zip(names, row["probs"], strict=True))
        np.testing.assert_allclose([got_scores[label] for label in sorted(want)], labels,
                                   atol=1e-4)
"""
CHECK_GENERATION = """\
    import torch

    tokenizer, model = reference.tokenizer, reference.model
    for text in TEXTS:
        got = client.post("/v1/completions", json={"model": "tiny", "prompt": text,
                                                  "max_tokens": 8, "temperature": 0})
        assert got.status_code == 200, got.text
        # The new tokens' text alone, as a server streams it (the pipeline's
        # return_full_text=False cuts the prompt's text out of the whole decoded instead).
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                 do_sample=False)
        want = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        assert got.json()["choices"][0]["text"] == want
"""


@dataclass(frozen=True)
class Kind:
    base_module: str
    base_class: str
    family_text: str
    stages: str
    pipeline_task: str
    check: str


KINDS: dict[str, Kind] = {
    "embedding": Kind("hfserve.skills.embedding", "EmbeddingSkill",
                      "text embeddings (/v1/embeddings, TEI's /embed)",
                      "`prepare` tokenizes one input, `run_batch` pools a padded batch.",
                      "feature-extraction", CHECK_EMBEDDING),
    "text-classification": Kind(
        "hfserve.skills.classification", "ClassificationSkill",
        "sequence classification, rerank and zero-shot (/v1/classify, /v1/rerank)",
        "`prepare` tokenizes a text or pair, `run_batch` scores a padded batch.",
        "text-classification", CHECK_CLASSIFICATION),
    "text-generation": Kind(
        "hfserve.skills.generation", "GenerationSkill",
        "text generation (/v1/chat/completions, /v1/completions, TGI's routes)",
        "`prefill` runs new prompts, `decode` one step of every running sequence, "
        "`sample` picks each next token (continuous batching).",
        "text-generation", CHECK_GENERATION),
}


def _environment():
    from jinja2 import PackageLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    # The templates are this package's own files, but the values come from a model's
    # config.json: sandboxed, as every template here is. Autoescape is for HTML.
    return SandboxedEnvironment(loader=PackageLoader("hfserve.plugins", "templates"),  # noqa: S701
                                undefined=StrictUndefined, keep_trailing_newline=True)


def write_skill(source: str, out: Path, task: str | None = None, stem: str | None = None,
                force: bool = False) -> list[Path]:
    """Write ``<stem>.py`` and ``test_<stem>.py`` for the model at ``source`` into ``out``;
    returns the two paths."""
    from hfserve.model_config import ModelConfig
    from hfserve.registry import build_spec

    spec = build_spec(ModelConfig(source=source))
    if spec.gguf_file:
        raise ValueError("skill new needs a model folder with config.json, not a GGUF file")
    wanted = task or spec.task.value
    if wanted not in KINDS:
        raise ValueError(f"no template for task {wanted!r} yet (templates: "
                         f"{', '.join(KINDS)})")
    if wanted not in {t.value for t in spec.tasks}:
        raise ValueError(f"{spec.architecture} does not do {wanted!r} (it does "
                         f"{', '.join(t.value for t in spec.tasks)})")
    stem = stem or f"hf_{re.sub(r'[^A-Za-z0-9_]', '_', spec.model_type)}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", stem):
        raise ValueError(f"{stem!r} is not a valid skill name")
    kind = KINDS[wanted]
    values = {"architecture": spec.architecture, "model_type": spec.model_type,
              "task": wanted, "stem": stem, "source": str(Path(spec.path).resolve()),
              "source_name": Path(spec.path).name,
              "class_name": "".join(p.capitalize() for p in stem.split("_")) + "Skill",
              **vars(kind)}
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    written = []
    for template, name in (("skill.py.j2", f"{stem}.py"), ("test_skill.py.j2",
                                                          f"test_{stem}.py")):
        path = out / name
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists (pass --force to replace it)")
        path.write_text(env.get_template(template).render(**values))
        written.append(path)
    return written
