"""Architecture family and default task of a model, read from transformers' own auto-class
mappings (which architecture class serves which task), never from hand-kept model lists."""

from __future__ import annotations

from typing import Any

from hfserve.registry.pipeline import is_pipeline_config
from hfserve.types import Family, Task

# (mapping name in transformers.models.auto.modeling_auto, task it implies), most specific first.
TASK_MAPPINGS: tuple[tuple[str, Task], ...] = (
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", Task.SPEECH_RECOGNITION),
    ("MODEL_FOR_CTC_MAPPING_NAMES", Task.SPEECH_RECOGNITION),
    ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", Task.AUDIO_CLASSIFICATION),
    ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", Task.IMAGE_TEXT_TO_TEXT),
    ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES", Task.ZERO_SHOT_IMAGE),
    ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES", Task.OBJECT_DETECTION),
    ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES", Task.IMAGE_SEGMENTATION),
    ("MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES", Task.IMAGE_SEGMENTATION),
    ("MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES", Task.IMAGE_SEGMENTATION),
    ("MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES", Task.IMAGE_SEGMENTATION),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", Task.IMAGE_CLASSIFICATION),
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", Task.TEXT2TEXT),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", Task.TEXT_GENERATION),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", Task.TEXT_CLASSIFICATION),
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", Task.TOKEN_CLASSIFICATION),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", Task.FILL_MASK),
    ("MODEL_MAPPING_NAMES", Task.FEATURE_EXTRACTION),
)

# Family implied by the first task mapping an architecture appears in.
TASK_FAMILY: dict[Task, Family] = {
    Task.SPEECH_RECOGNITION: Family.SPEECH,
    Task.AUDIO_CLASSIFICATION: Family.SPEECH,
    Task.IMAGE_TEXT_TO_TEXT: Family.VISION_LANGUAGE,
    Task.ZERO_SHOT_IMAGE: Family.VISION_TEXT,
    Task.OBJECT_DETECTION: Family.OBJECT_DETECTION,
    Task.IMAGE_SEGMENTATION: Family.SEGMENTATION,
    Task.IMAGE_CLASSIFICATION: Family.VISION,
    Task.TEXT2TEXT: Family.ENCODER_DECODER,
    Task.TEXT_GENERATION: Family.DECODER_ONLY,
    Task.TEXT_CLASSIFICATION: Family.ENCODER_ONLY,
    Task.TOKEN_CLASSIFICATION: Family.ENCODER_ONLY,
    Task.FILL_MASK: Family.ENCODER_ONLY,
    Task.FEATURE_EXTRACTION: Family.ENCODER_ONLY,
}

# Config keys that reveal a mixture-of-experts or a state-space model whatever its task.
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_STATE_SPACE_KEYS = ("ssm_state_size", "state_size", "mamba_d_state")


def _mappings() -> dict[str, dict[str, Any]]:
    from transformers.models.auto import modeling_auto

    return {name: getattr(modeling_auto, name, {}) for name, _ in TASK_MAPPINGS}


def _class_names(mapping: dict[str, Any], model_type: str) -> set[str]:
    value = mapping.get(model_type)
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


def tasks_for(model_type: str, architectures: list[str]) -> list[Task]:
    """Every task the model's architecture class (or, failing that, its type) serves."""
    mappings = _mappings()
    by_class = [task for name, task in TASK_MAPPINGS
                if set(architectures) & _class_names(mappings[name], model_type)]
    if by_class:
        return by_class
    return [task for name, task in TASK_MAPPINGS if model_type in mappings[name]]


def _is_vision_backbone(model_type: str) -> bool:
    from transformers.models.auto import modeling_auto

    return model_type in modeling_auto.MODEL_FOR_IMAGE_MAPPING_NAMES


def family_for(config: dict[str, Any], task: Task) -> Family:
    """The architecture family: special shapes (MoE, state-space, speech generation) first."""
    if any((config.get(k) or 0) > 1 for k in _EXPERT_KEYS if isinstance(config.get(k), int)):
        return Family.MOE
    if any(k in config for k in _STATE_SPACE_KEYS) and task == Task.TEXT_GENERATION:
        return Family.STATE_SPACE
    if task == Task.SPEECH_RECOGNITION and config.get("is_encoder_decoder"):
        return Family.SPEECH_GENERATION
    family = TASK_FAMILY.get(task, Family.ENCODER_ONLY)
    if task == Task.FEATURE_EXTRACTION and _is_vision_backbone(config.get("model_type", "")):
        return Family.VISION
    if family == Family.ENCODER_ONLY and config.get("is_encoder_decoder"):
        return Family.ENCODER_DECODER
    return family


def classify(config: dict[str, Any], *, sentence_transformers: bool = False
             ) -> tuple[Family, Task, tuple[Task, ...]]:
    """Return (family, default task, all tasks) for a raw config.json dict (or a diffusers
    pipeline's model_index.json: it makes images from text; the skill checks its class)."""
    if is_pipeline_config(config):
        return Family.DIFFUSION, Task.TEXT_TO_IMAGE, (Task.TEXT_TO_IMAGE,)
    model_type = config.get("model_type", "")
    architectures = list(config.get("architectures") or [])
    tasks = tasks_for(model_type, architectures)
    if sentence_transformers:
        tasks = [Task.EMBEDDING, *tasks]
    elif tasks and tasks[0] in (Task.FEATURE_EXTRACTION, Task.FILL_MASK) \
            and not _is_vision_backbone(model_type):
        # A bare encoder serves embeddings (mean pooling), as TEI and Infinity do.
        tasks.insert(0, Task.EMBEDDING)
    elif Task.FEATURE_EXTRACTION in tasks:
        tasks.insert(tasks.index(Task.FEATURE_EXTRACTION), Task.EMBEDDING)
    if Task.TEXT_CLASSIFICATION in tasks and config.get("num_labels", len(
            config.get("id2label") or {0: 0, 1: 1})) == 1:
        tasks.insert(tasks.index(Task.TEXT_CLASSIFICATION), Task.RERANK)
    if Task.TEXT_CLASSIFICATION in tasks and any(
            str(label).lower().startswith("entail") for label in (config.get("id2label") or {}
                                                                   ).values()):
        # An NLI head: it classifies any labels, as transformers' zero-shot pipeline does.
        tasks.insert(tasks.index(Task.TEXT_CLASSIFICATION) + 1, Task.ZERO_SHOT)
    if Task.IMAGE_TEXT_TO_TEXT in tasks:
        # It chats with or without images: the generation routes serve it.
        tasks.insert(tasks.index(Task.IMAGE_TEXT_TO_TEXT) + 1, Task.TEXT_GENERATION)
    if Task.TEXT2TEXT in tasks:
        # A prompt in, text out: completions and TGI's /generate serve it too.
        tasks.insert(tasks.index(Task.TEXT2TEXT) + 1, Task.TEXT_GENERATION)
    if not tasks:
        raise ValueError(f"unknown architecture {architectures or model_type!r}")
    tasks = list(dict.fromkeys(tasks))
    default = tasks[0]
    family_task = next((t for t in tasks if t not in (Task.EMBEDDING, Task.RERANK)), default)
    return family_for(config, family_task), default, tuple(tasks)
