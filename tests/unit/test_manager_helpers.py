"""Small pieces of the runtime that shape what clients and operators see."""

from __future__ import annotations

import json
from pathlib import Path

from hfserve.backends.export_cache import export_dir, is_complete, mark_complete
from hfserve.runtime.lifecycle.manager import _brief
from hfserve.types import Family, ModelSpec, Task


def test_brief_keeps_the_first_line_and_drops_folders() -> None:
    exc = FileNotFoundError("no file /work/models/secret/x.gguf or /tmp/a/b\nTraceback ...")
    text = _brief(exc)
    assert text == "FileNotFoundError: no file x.gguf or b"
    assert "/" not in text and "Traceback" not in text


def test_brief_is_short() -> None:
    assert len(_brief(RuntimeError("x" * 5000))) < 330


def make_spec(folder: Path, name: str = "m") -> ModelSpec:
    return ModelSpec(name=name, source=str(folder), path=folder, architecture="BertModel",
                     model_type="bert", family=Family.ENCODER_ONLY, task=Task.EMBEDDING,
                     tasks=(Task.EMBEDDING,))


def test_export_dir_is_stable_and_changes_with_the_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"a": 1}))
    one = export_dir(tmp_path / "cache", make_spec(model), "openvino", int8=False)
    assert one == export_dir(tmp_path / "cache", make_spec(model, "other-name"), "openvino",
                             int8=False)
    assert one != export_dir(tmp_path / "cache", make_spec(model), "openvino", int8=True)
    assert one != export_dir(tmp_path / "cache", make_spec(model), "onnx", int8=False)
    (model / "config.json").write_text(json.dumps({"a": 2, "changed": True}))
    assert one != export_dir(tmp_path / "cache", make_spec(model), "openvino", int8=False)


def test_complete_marker(tmp_path: Path) -> None:
    assert not is_complete(tmp_path)
    mark_complete(tmp_path)
    assert is_complete(tmp_path)
