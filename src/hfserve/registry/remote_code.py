"""Custom code a model folder ships: ``auto_map`` in its config.json or
tokenizer_config.json points transformers at Python files in the folder, which it runs
with ``trust_remote_code``. Refused unless the model sets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hfserve.errors import UnsafeModel


def _auto_map(file: Path) -> bool:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return False          # no such file, or not one transformers would read either
    return isinstance(data, dict) and bool(data.get("auto_map"))


def custom_code_files(folder: Path, config: dict[str, Any]) -> list[str]:
    """The files (config.json, tokenizer_config.json) whose ``auto_map`` names custom code."""
    found = ["config.json"] if config.get("auto_map") else []
    if _auto_map(Path(folder) / "tokenizer_config.json"):
        found.append("tokenizer_config.json")
    return found


def check_remote_code(folder: Path, config: dict[str, Any], trust_remote_code: bool) -> None:
    files = custom_code_files(folder, config)
    if files and not trust_remote_code:
        raise UnsafeModel(
            f"{Path(folder).name!r} ships custom Python code (auto_map in "
            f"{' and '.join(files)}), which loading would run; set trust_remote_code: true "
            "for this model if you trust its source", param="model")
