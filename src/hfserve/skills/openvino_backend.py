"""OpenVINO through optimum-intel: export a transformers model to IR once, keep it under the
cache directory, compile it for an OpenVINO device (CPU, GPU, NPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfserve.skills.base import Placement
from hfserve.skills.export_cache import export_dir, is_complete, mark_complete
from hfserve.types import ModelSpec

# Task family -> optimum-intel model class name.
OV_CLASSES = {
    "feature-extraction": "OVModelForFeatureExtraction",
    "text-generation": "OVModelForCausalLM",
    "text-classification": "OVModelForSequenceClassification",
}


def _source_folder(spec: ModelSpec, scratch: Path) -> str:
    """optimum exports from a folder; a GGUF file is first written out as one."""
    if not spec.gguf_file:
        return str(spec.path)
    if not (scratch / "config.json").is_file():
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(str(spec.path), gguf_file=spec.gguf_file)
        auto = AutoModelForCausalLM if config.architectures and \
            config.architectures[0].endswith("ForCausalLM") else AutoModel
        model = auto.from_pretrained(str(spec.path), gguf_file=spec.gguf_file)
        model.save_pretrained(scratch)
        AutoTokenizer.from_pretrained(str(spec.path), gguf_file=spec.gguf_file
                                      ).save_pretrained(scratch)
    return str(scratch)


def load_openvino(kind: str, spec: ModelSpec, placement: Placement) -> Any:
    """The optimum-intel model for ``kind``, exported on first use and cached."""
    import optimum.intel as oi

    cls = getattr(oi, OV_CLASSES[kind])
    int8 = bool(placement.options.get("int8"))
    target = export_dir(placement.options["cache_dir"], spec, "openvino", kind=kind, int8=int8)
    ov_device = placement.options.get("ov_device", "CPU")
    config = {"INFERENCE_NUM_THREADS": placement.threads} if placement.threads else {}
    if not is_complete(target):
        target.mkdir(parents=True, exist_ok=True)
        source = _source_folder(spec, target / "source")
        quant = None
        if int8:
            quant = oi.OVWeightQuantizationConfig(bits=8)
        model = cls.from_pretrained(source, export=True, compile=False,
                                    quantization_config=quant)
        model.save_pretrained(target)
        mark_complete(target)
    return cls.from_pretrained(str(target), device=ov_device, ov_config=config)
