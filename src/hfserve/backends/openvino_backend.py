"""OpenVINO through optimum-intel: export a transformers model to IR once, keep it under the
cache directory, compile it for an OpenVINO device (CPU, GPU, NPU)."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hfserve.backends.export_cache import export_dir, is_complete, mark_complete, run_isolated
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import model_kwargs, tokenizer_kwargs
from hfserve.types import ModelSpec

# Task family -> optimum-intel model class name.
OV_CLASSES = {
    "feature-extraction": "OVModelForFeatureExtraction",
    "text-generation": "OVModelForCausalLM",
    "text-classification": "OVModelForSequenceClassification",
    "token-classification": "OVModelForTokenClassification",
    "fill-mask": "OVModelForMaskedLM",
}


class _OfflineLookupNoise(logging.Filter):
    """Drops optimum-intel's (2.2) warning that it "could not infer whether the model was
    already converted": offline (HF_HUB_OFFLINE) it looks our local IR folder up as a hub id
    in the hub cache, fails, and says so with a "No such file" error at every load, then
    loads the folder as it should."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Could not infer whether the model was already")


logging.getLogger("optimum.intel.openvino.modeling_base").addFilter(_OfflineLookupNoise())


def _source_folder(spec: ModelSpec, scratch: Path) -> str:
    """optimum exports from a folder; a GGUF file is first written out as one."""
    if not spec.gguf_file:
        return str(spec.path)
    if not (scratch / "config.json").is_file():
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(str(spec.path), gguf_file=spec.gguf_file,
                                            **tokenizer_kwargs(spec))
        auto = AutoModelForCausalLM if config.architectures and \
            config.architectures[0].endswith("ForCausalLM") else AutoModel
        model = auto.from_pretrained(str(spec.path), gguf_file=spec.gguf_file,
                                     **model_kwargs(spec))
        model.save_pretrained(scratch)
    return str(scratch)


def _export(kind: str, spec: ModelSpec, int8: bool, target: Path) -> None:
    import optimum.intel as oi

    cls = getattr(oi, OV_CLASSES[kind])
    target.mkdir(parents=True, exist_ok=True)
    scratch = target / "source"
    quant = oi.OVWeightQuantizationConfig(bits=8) if int8 else None
    model = cls.from_pretrained(_source_folder(spec, scratch), export=True, compile=False,
                                quantization_config=quant, **tokenizer_kwargs(spec))
    model.save_pretrained(target)
    shutil.rmtree(scratch, ignore_errors=True)
    mark_complete(target)


def ensure_export(kind: str, spec: ModelSpec, placement: Placement) -> Path:
    """The IR folder for ``spec`` as ``kind``, exported on first use (in its own process)."""
    int8 = bool(placement.options.int8)
    target = export_dir(placement.options.cache_dir, spec, "openvino", kind=kind, int8=int8)
    if not is_complete(target):
        run_isolated(_export, kind, spec, int8, target)
    return target


PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


def ov_config(placement: Placement) -> dict[str, Any]:
    """Compile options: thread count and the inference precision of the chosen dtype."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS.get(placement.dtype,
                                                                              "f32")}
    if placement.threads:
        config["INFERENCE_NUM_THREADS"] = placement.threads
    return config


class ThreadRequests:
    """Runs an optimum-intel model's compiled network from several threads at once, each
    thread with an infer request of its own. optimum's model object calls the compiled model
    through one shared request, so two threads must not call it together; with one request
    per thread, each runs on its own inference stream (``NUM_STREAMS``)."""

    def __init__(self, model: Any) -> None:
        model.compile()
        self.compiled = model.request
        self.inputs = set(model.input_names)
        self.local = threading.local()

    def __call__(self, features: dict[str, Any]) -> dict[str, Any]:
        """numpy inputs by name (those the network lacks are ignored) -> outputs by name."""
        request = getattr(self.local, "request", None)
        if request is None:
            request = self.local.request = self.compiled.create_infer_request()
        result = request.infer({k: v for k, v in features.items() if k in self.inputs})
        return {name: result[port] for port in self.compiled.outputs
                for name in port.get_names()}


def load_openvino(kind: str, spec: ModelSpec, placement: Placement, streams: int = 1) -> Any:
    """The optimum-intel model for ``kind``, exported on first use and cached, compiled with
    ``streams`` inference streams (see ``ThreadRequests``)."""
    import optimum.intel as oi

    target = ensure_export(kind, spec, placement)
    config = ov_config(placement)
    if streams > 1:
        config["NUM_STREAMS"] = streams
    return getattr(oi, OV_CLASSES[kind]).from_pretrained(
        str(target), device=placement.options.ov_device, ov_config=config,
        **tokenizer_kwargs(spec))


def openvino_runner(kind: str, output: str, spec: ModelSpec, placement: Placement
                    ) -> Callable[..., Any]:
    """``run(**torch features) -> the torch tensor named output`` of the model exported as
    ``kind``, on ``placement``'s streams (several: each thread on a request of its own)."""
    streams = placement.options.streams
    model = load_openvino(kind, spec, placement, streams)
    if streams == 1:
        return lambda **features: getattr(model(**features), output)
    import torch

    run = ThreadRequests(model)
    return lambda **features: torch.from_numpy(
        run({k: v.numpy() for k, v in features.items()})[output])
