"""Registry: architecture classification, the task -> skill table, spec sizing and source
resolution, all on small dicts and temporary folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfserve.errors import InvalidRequest, ModelNotFound
from hfserve.model_config import ModelConfig
from hfserve.registry import skills as skill_table
from hfserve.registry.classify import classify
from hfserve.registry.source import resolve
from hfserve.registry.spec import build_spec, max_context, parameter_count
from hfserve.types import Family, Task

F, T = Family, Task

CASES = {
    "llama": ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
              F.DECODER_ONLY, T.TEXT_GENERATION),
    "t5": ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
            "is_encoder_decoder": True}, F.ENCODER_DECODER, T.TEXT2TEXT),
    "bart": ({"model_type": "bart", "architectures": ["BartForConditionalGeneration"],
              "is_encoder_decoder": True}, F.ENCODER_DECODER, T.TEXT2TEXT),
    "whisper": ({"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"],
                 "is_encoder_decoder": True}, F.SPEECH_GENERATION, T.SPEECH_RECOGNITION),
    "wav2vec2-ctc": ({"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"]},
                     F.SPEECH, T.SPEECH_RECOGNITION),
    "mixtral": ({"model_type": "mixtral", "architectures": ["MixtralForCausalLM"],
                 "num_local_experts": 8}, F.MOE, T.TEXT_GENERATION),
    "mamba": ({"model_type": "mamba", "architectures": ["MambaForCausalLM"],
               "state_size": 16}, F.STATE_SPACE, T.TEXT_GENERATION),
    "llava": ({"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"]},
              F.VISION_LANGUAGE, T.IMAGE_TEXT_TO_TEXT),
    "clip": ({"model_type": "clip", "architectures": ["CLIPModel"]},
             F.VISION_TEXT, T.ZERO_SHOT_IMAGE),
    "detr": ({"model_type": "detr", "architectures": ["DetrForObjectDetection"]},
             F.OBJECT_DETECTION, T.OBJECT_DETECTION),
    "vit": ({"model_type": "vit", "architectures": ["ViTForImageClassification"]},
            F.VISION, T.IMAGE_CLASSIFICATION),
    "segformer": ({"model_type": "segformer",
                   "architectures": ["SegformerForSemanticSegmentation"]},
                  F.SEGMENTATION, T.IMAGE_SEGMENTATION),
    "mask2former": ({"model_type": "mask2former",
                     "architectures": ["Mask2FormerForUniversalSegmentation"]},
                    F.SEGMENTATION, T.IMAGE_SEGMENTATION),
    "bert-ner": ({"model_type": "bert", "architectures": ["BertForTokenClassification"],
                  "id2label": {"0": "O", "1": "B-PER", "2": "I-PER"}},
                 F.ENCODER_ONLY, T.TOKEN_CLASSIFICATION),
}


# --- classify ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_family_and_default_task(name: str) -> None:
    config, family, task = CASES[name]
    got_family, got_task, tasks = classify(config)
    assert (got_family, got_task) == (family, task)
    assert tasks[0] == task
    assert len(set(tasks)) == len(tasks)


def test_clip_classifies_images_zero_shot_and_embeds() -> None:
    _, task, tasks = classify(CASES["clip"][0])
    assert task == T.ZERO_SHOT_IMAGE
    assert T.EMBEDDING in tasks


def test_vision_language_model_chats_through_generation() -> None:
    _, task, tasks = classify(CASES["llava"][0])
    assert task == T.IMAGE_TEXT_TO_TEXT
    assert tasks == (T.IMAGE_TEXT_TO_TEXT, T.TEXT_GENERATION)


def test_dense_decoder_is_not_moe() -> None:
    family, _, _ = classify({"model_type": "mixtral", "architectures": ["MixtralForCausalLM"],
                             "num_local_experts": 1})
    assert family == F.DECODER_ONLY


def test_sentence_transformers_bert_serves_embeddings() -> None:
    config = {"model_type": "bert", "architectures": ["BertModel"]}
    family, task, tasks = classify(config, sentence_transformers=True)
    assert (family, task) == (F.ENCODER_ONLY, T.EMBEDDING)
    assert T.FEATURE_EXTRACTION in tasks


def test_bare_encoder_defaults_to_embeddings() -> None:
    _, task, tasks = classify({"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    assert task == T.EMBEDDING
    assert T.FILL_MASK in tasks


def test_single_label_sequence_classifier_is_a_reranker() -> None:
    config = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
              "id2label": {"0": "LABEL_0"}}
    family, task, tasks = classify(config)
    assert (family, task) == (F.ENCODER_ONLY, T.RERANK)
    assert T.TEXT_CLASSIFICATION in tasks
    _, by_count, _ = classify({**config, "id2label": None, "num_labels": 1})
    assert by_count == T.RERANK


def test_multi_label_sequence_classifier_is_a_classifier() -> None:
    config = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
              "id2label": {"0": "neg", "1": "pos"}}
    _, task, tasks = classify(config)
    assert task == T.TEXT_CLASSIFICATION
    assert T.RERANK not in tasks


def test_model_type_is_used_when_architectures_are_missing() -> None:
    family, task, _ = classify({"model_type": "llama"})
    assert (family, task) == (F.DECODER_ONLY, T.TEXT_GENERATION)


@pytest.mark.parametrize("config", [
    {"model_type": "no-such-model", "architectures": ["NoSuchModelForCausalLM"]},
    {},
])
def test_unknown_architecture_raises(config: dict) -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        classify(config)


# --- task -> skill table -----------------------------------------------------------------
DETECTION = "hfserve.skills.object_detection:ObjectDetectionSkill"


@pytest.fixture
def table():
    saved = dict(skill_table.SKILLS)
    yield skill_table.SKILLS
    skill_table.SKILLS.clear()
    skill_table.SKILLS.update(saved)


def test_default_table_serves_embeddings_and_generation(table) -> None:
    assert skill_table.skill_targets(T.EMBEDDING) == ("hfserve.skills.embedding:EmbeddingSkill",)
    generation = skill_table.skill_targets(T.TEXT_GENERATION)
    assert generation[0].endswith(":OpenVINOGenerationSkill")
    assert generation[-1].endswith(":GenerationSkill")
    assert skill_table.skill_targets(T.OBJECT_DETECTION) == (DETECTION,)


def test_register_adds_before_or_after_and_never_twice(table) -> None:
    del table[T.OBJECT_DETECTION]
    assert T.OBJECT_DETECTION not in skill_table.served_tasks()
    skill_table.register(T.OBJECT_DETECTION, "plugins.detect:DetectSkill")
    assert skill_table.skill_targets(T.OBJECT_DETECTION) == ("plugins.detect:DetectSkill",)
    assert T.OBJECT_DETECTION in skill_table.served_tasks()
    skill_table.register("object-detection", "plugins.other:Better")
    assert skill_table.skill_targets(T.OBJECT_DETECTION) == ("plugins.other:Better",
                                                             "plugins.detect:DetectSkill")
    skill_table.register(T.OBJECT_DETECTION, "plugins.detect:DetectSkill", first=False)
    assert skill_table.skill_targets(T.OBJECT_DETECTION) == ("plugins.other:Better",
                                                             "plugins.detect:DetectSkill")


def test_register_rejects_bad_targets_and_tasks(table) -> None:
    before = dict(table)
    with pytest.raises(ValueError, match="module:Class"):
        skill_table.register(T.RERANK, "plugins.rerank.RerankSkill")
    with pytest.raises(ValueError):
        skill_table.register("no-such-task", "plugins.x:Y")
    assert table == before


def test_table_fixture_restored_the_defaults() -> None:
    assert skill_table.skill_targets(T.OBJECT_DETECTION) == (DETECTION,)


# --- spec sizing ----------------------------------------------------------------------------
def test_parameter_count_of_a_small_decoder() -> None:
    config = {"hidden_size": 8, "num_hidden_layers": 2, "vocab_size": 10,
              "intermediate_size": 16}
    # per layer: attention 4*8*8 + mlp 3*8*16; plus embeddings 10*8
    assert parameter_count(config) == 2 * (256 + 384) + 80


def test_parameter_count_defaults_and_aliases() -> None:
    assert parameter_count({"hidden_size": 8, "num_hidden_layers": 1}) == 256 + 3 * 8 * 32
    t5_style = {"d_model": 8, "num_layers": 1, "d_ff": 16, "vocab_size": 10}
    assert parameter_count(t5_style) == 256 + 384 + 80


def test_parameter_count_scales_with_experts() -> None:
    dense = {"hidden_size": 8, "num_hidden_layers": 1, "intermediate_size": 16}
    moe = {**dense, "num_local_experts": 4}
    assert parameter_count(moe) - parameter_count(dense) == 3 * 3 * 8 * 16


def test_parameter_count_unknown_without_sizes() -> None:
    assert parameter_count({"vocab_size": 10}) is None
    assert parameter_count({"hidden_size": 8}) is None


def test_max_context_keys() -> None:
    assert max_context({"max_position_embeddings": 512}) == 512
    assert max_context({"n_positions": 1024}) == 1024
    assert max_context({"n_ctx": 256}) == 256
    assert max_context({"max_position_embeddings": "long", "n_ctx": 64}) == 64
    assert max_context({}) is None


# --- source resolution -------------------------------------------------------------------
LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8,
         "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 64}


def model_folder(root: Path, name: str, config: dict) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_resolve_a_folder_with_config(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "tiny", LLAMA)
    local = resolve(str(folder))
    assert local.path == folder.resolve()
    assert local.config == LLAMA
    assert local.gguf_file is None
    assert local.sentence_transformers is False


def test_resolve_sees_sentence_transformers_modules(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "st", {"model_type": "bert"})
    (folder / "modules.json").write_text("[]")
    assert resolve(str(folder)).sentence_transformers is True


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as info:
        resolve(str(tmp_path / "missing"))
    assert info.value.status == 404
    assert info.value.param == "model"
    with pytest.raises(ModelNotFound):
        resolve("./no/such/folder")


def test_resolve_folder_without_config_or_gguf(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("not a model")
    with pytest.raises(ModelNotFound, match="no config.json"):
        resolve(str(empty))


def test_resolve_a_plain_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0")
    with pytest.raises(ModelNotFound, match="not a model folder"):
        resolve(str(path))


def test_build_spec_from_a_folder(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "tiny", LLAMA)
    spec = build_spec(ModelConfig(source=str(folder), name="tiny-chat"))
    assert spec.name == "tiny-chat"
    assert (spec.family, spec.task) == (F.DECODER_ONLY, T.TEXT_GENERATION)
    assert spec.architecture == "LlamaForCausalLM"
    assert spec.max_context == 64
    assert spec.parameters == parameter_count(LLAMA)


def test_build_spec_task_override_goes_first(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "enc", {"model_type": "bert",
                                             "architectures": ["BertModel"]})
    spec = build_spec(ModelConfig(source=str(folder), task=T.FEATURE_EXTRACTION))
    assert spec.task == T.FEATURE_EXTRACTION
    assert spec.tasks[0] == T.FEATURE_EXTRACTION
    assert T.EMBEDDING in spec.tasks


def test_build_spec_of_an_unknown_architecture_is_invalid(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, "odd", {"model_type": "odd", "architectures": ["Odd"]})
    with pytest.raises(InvalidRequest, match="cannot serve"):
        build_spec(ModelConfig(source=str(folder), name="odd"))
