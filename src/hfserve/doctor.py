"""``hfserve doctor``: what this environment has and lacks for serving, in one report.

Package versions are read from installed metadata (nothing heavy is imported for them),
devices and the reasons for absent ones come from the hardware layer, models from the
same settings a serve would use, and cache sizes from the folders themselves."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from hfserve.config import Settings

# (distribution, what it gives, how to get it); the first two are required.
PACKAGES: tuple[tuple[str, str, str], ...] = (
    ("torch", "every model (eager backend)", "pip install torch"),
    ("transformers", "every HuggingFace model", "pip install transformers"),
    ("optimum-intel", "the OpenVINO backend", "pip install 'hfserve[openvino]'"),
    ("openvino", "the OpenVINO backend", "pip install 'hfserve[openvino]'"),
    ("openvino-genai", "OpenVINO generation", "pip install 'hfserve[openvino]'"),
    ("onnxruntime", "the ONNX Runtime backend", "pip install 'hfserve[onnx]'"),
    ("gguf", "GGUF files", "pip install gguf"),
    ("sentence-transformers", "sentence-transformers pooling configs",
     "pip install sentence-transformers"),
    ("av", "audio uploads (speech models)", "pip install 'hfserve[audio]'"),
    ("Pillow", "image inputs (vision models)", "pip install Pillow"),
    ("diffusers", "text-to-image pipelines", "pip install 'hfserve[images]'"),
    ("redis", "rate limits shared by several servers", "pip install 'hfserve[redis]'"),
    ("ray", "Ray Serve mode (serve --ray)", "pip install 'hfserve[ray]'"),
)
REQUIRED = {"torch", "transformers"}


def packages() -> list[dict[str, Any]]:
    rows = []
    for name, purpose, install in PACKAGES:
        try:
            version: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = None
        rows.append({"name": name, "version": version, "for": purpose,
                     "install": None if version else install,
                     "required": name in REQUIRED})
    return rows


def torch_build() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {}
    return {"version": torch.__version__, "cuda": torch.version.cuda,
            "hip": getattr(torch.version, "hip", None), "threads": torch.get_num_threads()}


def folder_bytes(folder: Path) -> int | None:
    """The bytes of the files under ``folder`` (links not followed), None if absent."""
    if not folder.is_dir():
        return None
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def caches(settings: Settings) -> list[dict[str, Any]]:
    from huggingface_hub import constants

    places = (("huggingface hub", Path(constants.HF_HUB_CACHE)),
              ("hfserve exports and profiles", Path(settings.cache_dir)))
    return [{"name": name, "path": str(path), "bytes": folder_bytes(path)}
            for name, path in places]


def models(settings: Settings) -> list[dict[str, Any]]:
    """Each model a serve would offer, with its family and default task, or why it cannot
    be read (``hfserve models`` prints these too)."""
    from hfserve.registry import build_spec

    rows = []
    for mc in settings.models:
        try:
            spec = build_spec(mc)
            rows.append({"id": mc.served_name, "source": mc.source,
                         "family": spec.family.value, "task": spec.task.value})
        except Exception as exc:  # a report, not a load: say what is wrong and go on
            rows.append({"id": mc.served_name, "source": mc.source, "error": str(exc)})
    return rows


def report(settings: Settings) -> dict[str, Any]:
    from hfserve.hardware import absent_kinds, detect

    return {"python": {"version": platform.python_version(), "executable": sys.executable,
                       "platform": platform.platform()},
            "packages": packages(), "torch": torch_build(),
            "devices": [d.to_dict() for d in detect()], "absent": absent_kinds(),
            "models": models(settings), "caches": caches(settings)}


def healthy(found: dict[str, Any]) -> bool:
    """Whether everything required is installed and every model was understood."""
    missing = any(p["required"] and p["version"] is None for p in found["packages"])
    return not missing and not any("error" in m for m in found["models"])


def _size(count: int | None) -> str:
    return "absent" if count is None else f"{count / (1 << 30):.2f} GiB"


def format_report(found: dict[str, Any]) -> str:
    from hfserve.hardware import format_absences

    py = found["python"]
    lines = [f"python       {py['version']} ({py['executable']})", f"platform     {py['platform']}"]
    torch = found["torch"]
    if torch:
        build = (f"cuda {torch['cuda']}" if torch["cuda"] else
                 f"rocm {torch['hip']}" if torch["hip"] else "cpu only")
        lines.append(f"torch build  {build}, {torch['threads']} threads")
    lines += ["", "packages:"]
    for p in found["packages"]:
        state = p["version"] or f"missing -> {p['install']}"
        lines.append(f"  {p['name']:<22} {state:<40} {p['for']}")
    lines += ["", "devices:"]
    lines += [f"  {d['id']:<14} {d['name']} ({d['backend']})" for d in found["devices"]]
    absent = format_absences(found["absent"])
    if absent:
        lines += ["", absent]
    lines += ["", "models:" if found["models"] else "models: none given (MODEL, --config "
              "or --model-dirs)"]
    for m in found["models"]:
        what = m.get("error") or f"{m['family']} / {m['task']}"
        lines.append(f"  {m['id']:<30} {what}")
    lines += ["", "caches:"]
    lines += [f"  {c['name']:<30} {_size(c['bytes']):<12} {c['path']}" for c in found["caches"]]
    return "\n".join(lines)
