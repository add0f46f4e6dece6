"""``hfserve skill new``: a skill file for a model's architecture, and its test, written from
Jinja2 templates (``templates/``), one entry of ``KINDS`` per task a template exists for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hfserve.plugins import checks


@dataclass(frozen=True)
class Kind:
    """One task's template values: the built-in skill the file subclasses, what its
    docstrings say, and what its test sends and compares (snippets of ``checks``)."""

    base_module: str
    base_class: str
    family_text: str
    stages: str
    pipeline_task: str
    check: str
    inputs: str = checks.TEXT_INPUTS
    reference: str = ""          # code that sets ``reference``; empty: the task's pipeline
    compared_with: str = ""      # what the test's docstring names; empty: the pipeline


IMAGE_STAGES = ("`prepare` decodes and preprocesses one image, `run_batch` runs a batch of "
                "pixel tensors (grouped by shape).")

KINDS: dict[str, Kind] = {
    "embedding": Kind("hfserve.skills.embedding", "EmbeddingSkill",
                      "text embeddings (/v1/embeddings, TEI's /embed)",
                      "`prepare` tokenizes one input, `run_batch` pools a padded batch.",
                      "feature-extraction", checks.CHECK_EMBEDDING),
    "text-classification": Kind(
        "hfserve.skills.classification", "ClassificationSkill",
        "sequence classification, rerank and zero-shot (/v1/classify, /v1/rerank)",
        "`prepare` tokenizes a text or pair, `run_batch` scores a padded batch.",
        "text-classification", checks.CHECK_CLASSIFICATION),
    "text-generation": Kind(
        "hfserve.skills.generation", "GenerationSkill",
        "text generation (/v1/chat/completions, /v1/completions, TGI's routes)",
        "`prefill` runs new prompts, `decode` one step of every running sequence, "
        "`sample` picks each next token (continuous batching).",
        "text-generation", checks.CHECK_GENERATION),
    "text2text-generation": Kind(
        "hfserve.skills.seq2seq", "Seq2SeqSkill",
        "encoder-decoder generation (/v1/completions, TGI's routes)",
        "`prefill` encodes new prompts and starts their decoders, `decode` runs one decoder "
        "step of every running sequence (continuous batching).",
        "text2text-generation", checks.CHECK_TEXT2TEXT, reference=checks.SEQ2SEQ_REFERENCE,
        compared_with="the model's own greedy `generate`"),
    "token-classification": Kind(
        "hfserve.skills.token_classification", "TokenClassificationSkill",
        "token classification / NER (/v1/infer)",
        "`prepare` tokenizes one text with its offsets, `run_batch` tags a padded batch and "
        "groups the tags into entities.",
        "token-classification", checks.CHECK_TOKEN_CLASSIFICATION),
    "fill-mask": Kind(
        "hfserve.skills.fill_mask", "FillMaskSkill", "masked-token filling (/v1/infer)",
        "`prepare` tokenizes one text and finds its masks, `run_batch` ranks each mask's "
        "tokens over a padded batch.",
        "fill-mask", checks.CHECK_FILL_MASK),
    "image-classification": Kind(
        "hfserve.skills.image_classification", "ImageClassificationSkill",
        "image classification (/v1/classify, /v1/infer)", IMAGE_STAGES,
        "image-classification", checks.CHECK_IMAGE_CLASSIFICATION, inputs=checks.IMAGE_INPUTS,
        reference=checks.image_reference("image-classification")),
    "zero-shot-image-classification": Kind(
        "hfserve.skills.vision_text", "VisionTextSkill",
        "CLIP-style zero-shot image classification and text/image embeddings "
        "(/v1/classify, /v1/embeddings, /v1/infer)",
        "`prepare` tokenizes a text or preprocesses an image, `run_batch` projects each into "
        "the shared space and scores images against their candidate labels.",
        "zero-shot-image-classification", checks.CHECK_ZERO_SHOT_IMAGE,
        inputs=checks.IMAGE_INPUTS,
        reference=checks.image_reference("zero-shot-image-classification")),
    "automatic-speech-recognition": Kind(
        "hfserve.skills.speech_recognition", "SpeechRecognitionSkill",
        "speech recognition (/v1/audio/transcriptions; Whisper also /v1/audio/translations)",
        "`prepare` decodes one audio file to a waveform, `run_batch` transcribes a batch "
        "(Whisper's generate, or CTC's argmax).",
        "automatic-speech-recognition", checks.CHECK_SPEECH_RECOGNITION,
        inputs=checks.AUDIO_INPUTS),
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
    values["reference"] = kind.reference or checks.pipeline_reference(kind.pipeline_task)
    values["compared_with"] = (kind.compared_with
                               or f"transformers' `pipeline({kind.pipeline_task!r})`")
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
