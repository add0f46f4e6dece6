"""Custom code a model folder ships: ``auto_map`` in its config.json or
tokenizer_config.json points transformers at Python files in the folder, which it runs
with ``trust_remote_code``; a diffusers pipeline's model_index.json may name components from
a module of the folder's own. Refused unless the model sets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hfserve.errors import UnsafeModel
from hfserve.registry.pipeline import PIPELINE_INDEX, component_folders, is_pipeline_config

# Libraries a pipeline's components may come from without code of the folder's own.
KNOWN_LIBRARIES = (None, "diffusers", "transformers")


def _auto_map(file: Path) -> bool:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return False          # no such file, or not one transformers would read either
    return isinstance(data, dict) and bool(data.get("auto_map"))


def custom_code_files(folder: Path, config: dict[str, Any]) -> list[str]:
    """Where custom code is named: ``auto_map`` in config.json or tokenizer_config.json (a
    pipeline component's too), a pipeline component of a library of the folder's own."""
    found = ["auto_map in config.json"] if config.get("auto_map") else []
    if _auto_map(Path(folder) / "tokenizer_config.json"):
        found.append("auto_map in tokenizer_config.json")
    if is_pipeline_config(config):
        found += [f"component {name} of {PIPELINE_INDEX}" for name, value in config.items()
                  if isinstance(value, list) and len(value) == 2
                  and value[0] not in KNOWN_LIBRARIES]
        for part in component_folders(folder)[1:]:
            found += [f"auto_map in {part.name}/{name}"
                      for name in ("config.json", "tokenizer_config.json")
                      if _auto_map(part / name)]
    return found


def check_remote_code(folder: Path, config: dict[str, Any], trust_remote_code: bool) -> None:
    files = custom_code_files(folder, config)
    if files and not trust_remote_code:
        raise UnsafeModel(
            f"{Path(folder).name!r} ships custom Python code ({' and '.join(files)}), which "
            "loading would run; set trust_remote_code: true for this model if you trust its "
            "source", param="model")
