"""Causal-LM text generation on torch: chat templates, prefill and per-step decode with the
model's own KV cache. The runtime's scheduler drives the loop."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.skills import sampling
from hfserve.skills.base import GenerativeSkill, Placement
from hfserve.skills.hf_text import HFTextCodec
from hfserve.skills.torch_backend import load_torch_model
from hfserve.types import SamplingParams, Task, TokenChoice


def _cache_kwarg() -> str:
    """transformers renamed ``past_key_values`` to ``cache``; the output type tells which
    this installed version takes. The cache object is updated in place either way."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ \
        else "past_key_values"


class GenerationSkill(HFTextCodec, GenerativeSkill):
    task: ClassVar[Task] = Task.TEXT_GENERATION

    def load(self, placement: Placement) -> None:
        from transformers import AutoModelForCausalLM

        self.cache_kwarg = _cache_kwarg()
        self.placement = placement
        self.model = load_torch_model(AutoModelForCausalLM, self.spec, placement)
        self.eos_token_ids = self.load_tokenizer(self.spec,
                                                 self.model.generation_config.eos_token_id)
        self.max_context = self.spec.max_context or 2048

    def unload(self) -> None:
        self.model = None

    # --- model stages ----------------------------------------------------------------
    def prefill(self, prompt_ids: list[int], prompt_logprobs: int | None
                ) -> tuple[Any, Any, list[TokenChoice] | None]:
        import torch
        from transformers import DynamicCache

        ids = torch.tensor([prompt_ids], device=self.placement.device)
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, **{self.cache_kwarg: cache},
                             logits_to_keep=0 if prompt_logprobs is not None else 1)
        logits = out.logits[0]
        prompt = None
        if prompt_logprobs is not None:
            prompt = sampling.prompt_choices(logits[:-1], prompt_ids, prompt_logprobs)
        return cache, logits[-1], prompt

    def decode(self, states: list[Any], last_tokens: list[int]) -> list[Any]:
        import torch

        results = []
        with torch.inference_mode():
            for cache, token in zip(states, last_tokens, strict=True):
                ids = torch.tensor([[token]], device=self.placement.device)
                out = self.model(input_ids=ids, use_cache=True, **{self.cache_kwarg: cache})
                results.append(out.logits[0, -1])
        return results

    def sample(self, logits: Any, params: SamplingParams, generator: Any,
               history: list[int]) -> TokenChoice:
        return sampling.sample(logits, params, generator, history)

    def new_generator(self, seed: int | None) -> Any:
        import torch

        generator = torch.Generator(device="cpu")
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
        return generator
