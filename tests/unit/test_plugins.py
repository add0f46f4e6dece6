"""Skill files: which file serves a model, and which handler outputs are refused."""

from __future__ import annotations

import numpy as np
import pytest

from hfserve.errors import InvalidPluginOutput, InvalidRequest
from hfserve.plugins import files, outputs, plugin_classes

TEXTS = ["a", "b"]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "hf_bert.py").write_text(
        "class hf_bert:\n    def create_cpu_text_embedding_endpoint_handler(self): pass\n")
    (tmp_path / "hf_gpt2.py").write_text(
        "class hf_gpt2:\n    def create_cpu_text_generation_endpoint_handler(self): pass\n")
    files.use_folder(tmp_path)
    yield tmp_path
    files.use_folder(None)


def test_a_file_is_found_by_model_type_or_by_name(folder) -> None:
    assert files.skill_file({}, "bert", "m") == folder / "hf_bert.py"
    assert files.skill_file({}, "roberta", "m") is None
    assert files.skill_file({"skill": "hf_bert"}, "roberta", "m") == folder / "hf_bert.py"
    with pytest.raises(InvalidRequest, match="no hf_nope.py"):
        files.skill_file({"skill": "hf_nope"}, "bert", "m")
    (cls,) = plugin_classes({}, "bert", "m")
    assert cls.plugin_file == folder / "hf_bert.py" and cls.task.value == "embedding"


def test_without_a_folder_no_file_is_read(tmp_path) -> None:
    files.use_folder(None)
    assert files.skill_file({}, "bert", "m") is None
    with pytest.raises(InvalidRequest, match="no skills_dir"):
        files.skill_file({"skill": "hf_bert"}, "bert", "m")


def test_a_seed_file_for_another_task_says_what_it_offers(folder) -> None:
    with pytest.raises(Exception, match="text_generation"):
        plugin_classes({}, "gpt2", "m")


def test_good_vectors_pass() -> None:
    rows = outputs.embeddings(np.array([[1.0, 2.0], [3.0, 1.0]]), TEXTS, 2, "hf_x")
    assert [list(r) for r in rows] == [[1.0, 2.0], [3.0, 1.0]]
    (one,) = outputs.embeddings({"embedding": [0.5, 0.25]}, ["a"], 2, "hf_x")
    assert list(one) == [0.5, 0.25]


@pytest.mark.parametrize(("output", "message"), [
    ({"embedding": [[1.0, 2.0]] * 2, "implementation_type": "(MOCK)"}, "placeholder"),
    ("mock output", "placeholder"),
    (np.zeros((2, 2)), "constant"),
    (np.full((2, 2), 0.1), "constant"),
    (np.array([[1.0, 2.0], [1.0, 2.0]]), "same vector"),
    (np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), "hidden size is 2"),
    (np.array([[1.0, 2.0]]), "one vector per input"),
    (np.array([[1.0, np.nan], [3.0, 1.0]]), "NaN"),
    ({"logits": [1, 2]}, "without any of"),
    (object(), "not vectors"),
])
def test_placeholders_and_wrong_shapes_are_refused(output, message) -> None:
    with pytest.raises(InvalidPluginOutput, match=message):
        outputs.embeddings(output, TEXTS, 2, "hf_x")
