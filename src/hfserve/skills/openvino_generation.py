"""Text generation on OpenVINO through openvino-genai's continuous-batching pipeline: paged
KV cache, new requests join between steps, finished ones leave at once. Prompts are tokenized
and outputs detokenized with the model's own HF tokenizer, as on every other backend."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from hfserve.backends.openvino_backend import ensure_export, load_openvino, ov_config
from hfserve.backends.placement import BackendOptions, Placement
from hfserve.engines.openvino_lm.scoring import SequenceScorer
from hfserve.errors import InvalidRequest
from hfserve.skills.base import PipelineOutput, PipelineSkill
from hfserve.text.codec import HFTextCodec
from hfserve.text.openvino_tokenizer import genai_tokenizer
from hfserve.types import Constraint, SamplingParams, Task, TokenChoice


def cache_gib(options: BackendOptions) -> int:
    """The pipeline's KV-cache size (whole GiB, as ``SchedulerConfig.cache_size`` takes it)
    from ``kv_cache_memory`` in bytes, rounded up; 1 GiB when it is not set."""
    wanted = options.kv_cache_memory
    return 1 if not wanted else max(1, -(-int(wanted) // 2**30))


def batched_tokens(options: BackendOptions, max_seqs: int) -> int:
    """Tokens the pipeline computes per step: the prompt tokens prefilled while others
    stream (a longer prompt goes in parts, ``dynamic_split_fuse``), and at least one decode
    token for every sequence. On a CPU 512 by default, as with torch: a 2,048-token prompt
    joining four SmolLM2 streams stalled them for 0.8 s whole and 0.4 s in parts of 512, its
    own first token 2-18% later (``bench/long_prompt.py --backend openvino``, 2 vCPUs)."""
    budget = options.max_prefill_tokens or (512 if options.ov_device == "CPU" else 2048)
    return max(int(budget), max_seqs)


def structured_output(constraint: Constraint) -> Any:
    """openvino-genai's own constrained decoding (xgrammar inside the pipeline) for
    ``constraint``: its JSON schema or regex, between the fixed text of a tool-call
    format."""
    import openvino_genai as genai

    config = genai.StructuredOutputConfig
    if constraint.kind == "json_schema":
        schema = json.loads(constraint.value)
        text = json.dumps({} if schema is True else schema)
        if not (constraint.prefix or constraint.suffix):
            return config(json_schema=text)
        body = config.JSONSchema(text)
    else:
        if not (constraint.prefix or constraint.suffix):
            return config(regex=constraint.value)
        body = config.Regex(constraint.value)
    parts = [config.ConstString(constraint.prefix)] if constraint.prefix else []
    parts.append(body)
    if constraint.suffix:
        parts.append(config.ConstString(constraint.suffix))
    return config(compound_grammar=config.Concat(*parts))


class OpenVINOGenerationSkill(HFTextCodec, PipelineSkill):
    task: ClassVar[Task] = Task.TEXT_GENERATION
    own_process: ClassVar[bool] = True
    backends: ClassVar[tuple[str, ...]] = ("openvino",)
    # The pipeline reports the chosen token's log-probability only; prompt logprobs and
    # the top alternatives come from a scoring forward of the same IR (``score``).
    supports_prompt_logprobs: ClassVar[bool] = True
    supports_top_logprobs: ClassVar[bool] = True

    def load(self, placement: Placement) -> None:
        import openvino_genai as genai

        self.placement = placement
        generation = self.spec.config.get("eos_token_id")
        self.eos_token_ids = self.load_tokenizer(self.spec, generation,
                                                 placement.options.cache_dir)
        self.max_context = self.spec.max_context or 2048
        # The pipeline is fed token ids and returns token ids, so it needs no tokenizer IR.
        folder = ensure_export("text-generation", self.spec, placement)
        self.scorer = SequenceScorer(lambda: load_openvino("text-generation", self.spec,
                                                           placement))
        scheduler = genai.SchedulerConfig()
        scheduler.cache_size = cache_gib(placement.options)
        scheduler.max_num_seqs = int(placement.options.max_concurrent)
        scheduler.max_num_batched_tokens = batched_tokens(placement.options,
                                                          scheduler.max_num_seqs)
        scheduler.dynamic_split_fuse = True   # chunked prefill: running streams keep flowing
        # Blocks of a prompt prefix seen before are reused, as vLLM and TGI do by default:
        # SmolLM2's chat template puts the same system prompt first in every request
        # (prefill of one chat prompt here: 34 -> 27.5 ms).
        scheduler.enable_prefix_caching = bool(placement.options.prefix_caching)
        config = ov_config(placement)
        if config.get("INFERENCE_NUM_THREADS") == 1 and placement.dtype != "float32":
            # OpenVINO 2026.4's CPU plugin dies (SIGFPE) building a continuous-batching
            # pipeline with one inference thread in bf16/f16; two threads run fine.
            config["INFERENCE_NUM_THREADS"] = 2
        device = placement.options.ov_device
        tokenizer = genai_tokenizer(self.tokenizer, folder / "genai_tokenizer")
        self.structured = tokenizer is not None
        if tokenizer is None:
            self.pipe = genai.ContinuousBatchingPipeline(str(folder), scheduler, device, config)
        else:
            self.pipe = genai.ContinuousBatchingPipeline(str(folder), tokenizer, scheduler,
                                                         device, **config)

    def unload(self) -> None:
        self.pipe = None
        self.scorer.unload()

    def score(self, ids: list[int], start: int, k: int | None) -> list[TokenChoice]:
        return self.scorer.score(ids, start, k)

    def _config(self, params: SamplingParams) -> Any:
        import openvino_genai as genai

        config = genai.GenerationConfig()
        config.max_new_tokens = params.max_tokens
        config.ignore_eos = params.ignore_eos
        config.stop_token_ids = set(self.eos_token_ids) | set(params.stop_token_ids)
        config.logprobs = 1 if params.logprobs is not None else 0
        config.presence_penalty = params.presence_penalty
        config.frequency_penalty = params.frequency_penalty
        if params.temperature == 0:
            config.do_sample = False
        else:
            config.do_sample = True
            config.temperature = params.temperature
            config.top_p = params.top_p
            config.top_k = params.top_k or 0
            if params.seed is not None:
                config.rng_seed = params.seed
        if params.constraint is not None:
            config.structured_output_config = structured_output(params.constraint)
        return config

    def add(self, key: int, prompt_ids: list[int], params: SamplingParams) -> Any:
        import numpy as np
        import openvino as ov

        if params.constraint is not None and not self.structured:
            raise InvalidRequest("structured output is unavailable on this model's OpenVINO "
                                 "pipeline (its tokenizer did not convert); serve it with "
                                 "backend: torch", param="response_format")
        ids = ov.Tensor(np.asarray([prompt_ids], dtype=np.int64))
        return self.pipe.add_request(key, ids, self._config(params))

    def step(self) -> None:
        self.pipe.step()

    def has_work(self) -> bool:
        return self.pipe.has_non_finished_requests()

    def read(self, handle: Any) -> PipelineOutput:
        finished = handle.get_status().name != "RUNNING"
        if not handle.can_read():
            return PipelineOutput([], None, finished)
        tokens: list[int] = []
        logprobs: list[float] = []
        for out in handle.read().values():   # one sequence per request
            tokens += list(out.generated_ids)
            logprobs += list(out.generated_log_probs)
        return PipelineOutput(tokens, logprobs or None, finished)

    def cancel(self, handle: Any) -> None:
        handle.cancel()
