"""Diffusers pipeline folders (model_index.json beside component subfolders): resolved,
classified as text-to-image, discovered, sized and checked across their components, and
refused with the install hint where diffusers is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hfserve.backends.placement import Placement
from hfserve.errors import UnsafeModel
from hfserve.model_config import ModelConfig
from hfserve.registry import build_spec, discovery
from hfserve.registry.classify import classify
from hfserve.registry.identity import source_identity
from hfserve.registry.pipeline import component_folders, is_pipeline_config
from hfserve.runtime.lifecycle import footprint
from hfserve.skills.image_generation import ImageGenerationSkill
from hfserve.types import Family, Task

INDEX = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.39.0",
         "unet": ["diffusers", "UNet2DConditionModel"],
         "text_encoder": ["transformers", "CLIPTextModel"]}


def pipeline_folder(root: Path, weights: str = "diffusion_pytorch_model.safetensors") -> Path:
    folder = root / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "text_encoder").mkdir()
    (folder / "model_index.json").write_text(json.dumps(INDEX))
    (folder / "unet" / "config.json").write_text("{}")
    (folder / "text_encoder" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    raw = len(header).to_bytes(8, "little") + header.encode() + b"\0" * 16
    (folder / "unet" / weights).write_bytes(raw)
    return folder


def test_an_index_is_a_text_to_image_model() -> None:
    assert is_pipeline_config(INDEX)
    assert classify(INDEX) == (Family.DIFFUSION, Task.TEXT_TO_IMAGE, (Task.TEXT_TO_IMAGE,))


def test_a_pipeline_folder_builds_a_spec(tmp_path) -> None:
    spec = build_spec(ModelConfig(source=str(pipeline_folder(tmp_path))))
    assert (spec.task, spec.family, spec.architecture) == (
        Task.TEXT_TO_IMAGE, Family.DIFFUSION, "StableDiffusionPipeline")
    names = [entry[0] for entry in source_identity(spec)]
    assert "model_index.json" in names and "unet/diffusion_pytorch_model.safetensors" in names
    assert footprint.weight_bytes(spec) == (spec.path / "unet" /
                                            "diffusion_pytorch_model.safetensors").stat().st_size


def test_components_are_the_subfolders(tmp_path) -> None:
    folder = pipeline_folder(tmp_path)
    assert component_folders(folder) == [folder, folder / "text_encoder", folder / "unet"]
    assert component_folders(tmp_path) == [tmp_path]


def test_discovery_finds_a_pipeline_folder(tmp_path) -> None:
    folder = pipeline_folder(tmp_path)
    assert [mc.source for mc in discovery.scan_folders([tmp_path])] == [str(folder)]
    assert [mc.source for mc in discovery.scan_folders([folder])] == [str(folder)]


def test_a_pickle_only_component_is_refused(tmp_path) -> None:
    folder = pipeline_folder(tmp_path, weights="diffusion_pytorch_model.bin")
    with pytest.raises(UnsafeModel, match="allow_pickle"):
        build_spec(ModelConfig(source=str(folder)))
    assert build_spec(ModelConfig(source=str(folder), allow_pickle=True)).task == \
        Task.TEXT_TO_IMAGE


def test_without_diffusers_the_load_names_the_extra(tmp_path, monkeypatch) -> None:
    spec = build_spec(ModelConfig(source=str(pipeline_folder(tmp_path))))
    monkeypatch.setitem(sys.modules, "diffusers", None)     # import diffusers fails
    with pytest.raises(ImportError, match=r"pip install 'hfserve\[images\]'"):
        ImageGenerationSkill(spec).load(Placement())


def test_a_component_of_the_folders_own_code_is_refused(tmp_path) -> None:
    folder = pipeline_folder(tmp_path)
    index = {**INDEX, "unet": ["my_unet", "MyUNet"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UnsafeModel, match="component unet of model_index.json"):
        build_spec(ModelConfig(source=str(folder)))
    assert build_spec(ModelConfig(source=str(folder), trust_remote_code=True)).task == \
        Task.TEXT_TO_IMAGE


def test_auto_map_in_a_component_is_refused(tmp_path) -> None:
    folder = pipeline_folder(tmp_path)
    (folder / "text_encoder" / "config.json").write_text(json.dumps({"auto_map": {"A": "b.C"}}))
    with pytest.raises(UnsafeModel, match="auto_map in text_encoder/config.json"):
        build_spec(ModelConfig(source=str(folder)))
