"""Which weight files a model folder holds, and whether they may be loaded: pickle files
run code when unpickled, so a folder whose weights are only pickles is refused unless the
model allows it; every safetensors file's header is checked first."""

from __future__ import annotations

from pathlib import Path

from hfserve.errors import UnsafeModel
from hfserve.registry.pipeline import component_folders
from hfserve.registry.safetensors_header import check_safetensors

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def safetensors_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.safetensors"))


def pickle_files(folder: Path) -> list[Path]:
    """Top-level pickle weights. An OpenVINO IR's ``.bin`` (beside its ``.xml``) is raw
    weights, not a pickle."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix in PICKLE_SUFFIXES
                  and not p.with_suffix(".xml").is_file())


def check_weights(folder: Path, allow_pickle: bool) -> None:
    """Refuse pickle-only weights without ``allow_pickle``; check safetensors headers. A
    diffusers pipeline's components are checked each in its subfolder."""
    for part in component_folders(folder):
        _check_folder(part, allow_pickle)


def _check_folder(folder: Path, allow_pickle: bool) -> None:
    tensors = safetensors_files(folder)
    for path in tensors:
        check_safetensors(path)
    pickles = pickle_files(folder)
    if pickles and not tensors and not allow_pickle:
        names = ", ".join(p.name for p in pickles[:5]) + (", ..." if len(pickles) > 5 else "")
        raise UnsafeModel(
            f"the weights of {Path(folder).name!r} are only pickle files ({names}), which can "
            "run code when loaded; convert them to safetensors, or set allow_pickle: true "
            "for this model if you trust its source", param="model")
