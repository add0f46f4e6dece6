"""Build the ModelSpec of a configured model: resolve its source, classify it, size it."""

from __future__ import annotations

from typing import Any

from hfserve.errors import InvalidRequest
from hfserve.model_config import ModelConfig
from hfserve.registry.classify import classify
from hfserve.registry.remote_code import check_remote_code
from hfserve.registry.source import resolve
from hfserve.registry.weights import check_weights
from hfserve.types import ModelSpec


def parameter_count(config: dict[str, Any]) -> int | None:
    """Rough parameter count from the config, for memory estimates before loading."""
    hidden = config.get("hidden_size") or config.get("d_model") or config.get("n_embd")
    layers = (config.get("num_hidden_layers") or config.get("num_layers")
              or config.get("n_layer"))
    vocab = config.get("vocab_size") or 0
    if not hidden or not layers:
        return None
    inner = config.get("intermediate_size") or config.get("d_ff") or 4 * hidden
    experts = max(1, int(config.get("num_local_experts") or config.get("num_experts") or 1))
    per_layer = 4 * hidden * hidden + 3 * hidden * inner * experts
    return int(layers * per_layer + vocab * hidden)


def max_context(config: dict[str, Any]) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx"):
        if isinstance(config.get(key), int):
            return config[key]
    # A vision-language model's context is its language model's.
    text = config.get("text_config")
    return max_context(text) if isinstance(text, dict) else None


# What a GGUF file's tensors dequantize to best: its quantized blocks carry float16 scales,
# so half precision holds them, and bfloat16 is the half type CPUs compute natively (the
# type of the file itself sits deep in its metadata, seconds to read for a small model).
GGUF_DTYPE = "bfloat16"


def checkpoint_dtype(config: dict[str, Any], gguf_file: str | None) -> str | None:
    """The dtype the weights are stored in: config.json's ``dtype`` (transformers 5) or
    ``torch_dtype``; None where it says nothing (transformers then loads float32)."""
    if gguf_file:
        return GGUF_DTYPE
    value = config.get("dtype") or config.get("torch_dtype")
    return value if isinstance(value, str) else None


def build_spec(mc: ModelConfig) -> ModelSpec:
    local = resolve(mc.source, mc.gguf_file, mc.trust_remote_code)
    check_remote_code(local.path, local.config, mc.trust_remote_code)
    if local.gguf_file is None:
        check_weights(local.path, mc.allow_pickle)
    try:
        family, task, tasks = classify(local.config,
                                       sentence_transformers=local.sentence_transformers)
    except ValueError as exc:
        raise InvalidRequest(f"cannot serve {mc.served_name!r}: {exc}", param="model") from exc
    if mc.task is not None:
        task = mc.task
        tasks = (task, *[t for t in tasks if t != task])
    architectures = local.config.get("architectures") or [
        local.config.get("_class_name") or local.config.get("model_type", "")]
    return ModelSpec(
        name=mc.served_name,
        source=mc.source,
        path=local.path,
        architecture=architectures[0],
        model_type=local.config.get("model_type", ""),
        family=family,
        task=task,
        tasks=tasks,
        config=local.config,
        gguf_file=local.gguf_file,
        parameters=parameter_count(local.config),
        max_context=max_context(local.config),
        checkpoint_dtype=checkpoint_dtype(local.config, local.gguf_file),
        options=mc.model_dump(),
    )
