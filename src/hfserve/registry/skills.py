"""The task -> skills table. Entries are import paths so the registry never imports the heavy
skill modules. A task may have several skills, one per backend family, tried in order for
each device; the table is open: ``register`` adds one (plugin skills)."""

from __future__ import annotations

from hfserve.types import Task

SKILLS: dict[Task, tuple[str, ...]] = {
    Task.EMBEDDING: ("hfserve.skills.embedding:EmbeddingSkill",),
    Task.FEATURE_EXTRACTION: ("hfserve.skills.embedding:EmbeddingSkill",),
    Task.TEXT_CLASSIFICATION: ("hfserve.skills.classification:ClassificationSkill",),
    Task.TOKEN_CLASSIFICATION: ("hfserve.skills.token_classification:"
                                "TokenClassificationSkill",),
    Task.ZERO_SHOT: ("hfserve.skills.classification:ClassificationSkill",),
    Task.RERANK: ("hfserve.skills.classification:ClassificationSkill",),
    Task.IMAGE_CLASSIFICATION: ("hfserve.skills.image_classification:"
                                "ImageClassificationSkill",),
    Task.OBJECT_DETECTION: ("hfserve.skills.object_detection:ObjectDetectionSkill",),
    Task.IMAGE_SEGMENTATION: ("hfserve.skills.image_segmentation:ImageSegmentationSkill",),
    Task.ZERO_SHOT_IMAGE: ("hfserve.skills.vision_text:VisionTextSkill",),
    Task.SPEECH_RECOGNITION: ("hfserve.skills.speech_recognition:SpeechRecognitionSkill",),
    Task.AUDIO_CLASSIFICATION: ("hfserve.skills.audio_classification:"
                                "AudioClassificationSkill",),
    Task.FILL_MASK: ("hfserve.skills.fill_mask:FillMaskSkill",),
    Task.TEXT2TEXT: ("hfserve.skills.seq2seq:Seq2SeqSkill",),
    Task.TEXT_TO_IMAGE: ("hfserve.skills.image_generation:ImageGenerationSkill",),
    Task.IMAGE_TEXT_TO_TEXT: ("hfserve.skills.vision_chat:VisionChatSkill",),
    Task.TEXT_GENERATION: ("hfserve.skills.openvino_generation:OpenVINOGenerationSkill",
                           "hfserve.skills.generation:GenerationSkill"),
}


def register(task: Task, target: str, *, first: bool = True) -> None:
    """Serve ``task`` with the skill class at ``target`` ("package.module:Class"), before
    (``first``) or after the skills already registered for it."""
    if ":" not in target:
        raise ValueError(f"skill target must look like 'module:Class', got {target!r}")
    current = tuple(t for t in SKILLS.get(Task(task), ()) if t != target)
    SKILLS[Task(task)] = (target, *current) if first else (*current, target)


ENTRY_POINT_GROUP = "hfserve.skills"


def register_installed() -> list[str]:
    """Register the skills installed packages offer in the ``hfserve.skills`` entry-point
    group (name: the task, e.g. ``text-classification``; value: ``package.module:Class``),
    before the built-in ones; returns what was registered. A package is installed code the
    operator chose, as a ``skills:`` setting is."""
    from importlib.metadata import entry_points

    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        register_all({point.name: point.value})
        found.append(f"{point.name}={point.value}")
    return found


def register_all(table: dict[str, str | list[str]]) -> None:
    """Register ``task -> target(s)`` (a ``skills:`` setting), each before the built-ins."""
    for task, targets in table.items():
        for target in reversed([targets] if isinstance(targets, str) else targets):
            register(Task(task), target)


def skill_targets(task: Task) -> tuple[str, ...]:
    return SKILLS.get(task, ())


def served_tasks() -> set[Task]:
    return set(SKILLS)
