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


def _batchable(cache: Any) -> bool:
    """Only plain full-attention caches can be padded and stacked."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


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

        with torch.inference_mode():
            if len(states) > 1 and all(_batchable(s) for s in states):
                return self._decode_batched(states, last_tokens)
            results = []
            for cache, token in zip(states, last_tokens, strict=True):
                ids = torch.tensor([[token]], device=self.placement.device)
                out = self.model(input_ids=ids, use_cache=True, **{self.cache_kwarg: cache})
                results.append(out.logits[0, -1])
            return results

    def _decode_batched(self, states: list[Any], last_tokens: list[int]) -> list[Any]:
        """One forward for every running sequence: their caches are left-padded to a common
        length and stacked, the step runs with a mask over the padding, and each sequence
        takes its own slice back. (Our own because transformers' continuous-batching manager
        fixes sampling per manager, not per request.)"""
        import torch
        from torch.nn.functional import pad
        from transformers import DynamicCache

        device = self.placement.device
        lengths = [s.get_seq_length() for s in states]
        longest = max(lengths)
        batched = DynamicCache(config=self.model.config)
        for index in range(len(states[0].layers)):
            keys = [pad(s.layers[index].keys, (0, 0, longest - n, 0))
                    for s, n in zip(states, lengths, strict=True)]
            values = [pad(s.layers[index].values, (0, 0, longest - n, 0))
                      for s, n in zip(states, lengths, strict=True)]
            batched.update(torch.cat(keys), torch.cat(values), index)
        mask = torch.zeros(len(states), longest + 1, dtype=torch.long, device=device)
        for row, n in enumerate(lengths):
            mask[row, longest - n:] = 1
        out = self.model(input_ids=torch.tensor([[t] for t in last_tokens], device=device),
                         attention_mask=mask,
                         position_ids=torch.tensor([[n] for n in lengths], device=device),
                         use_cache=True, **{self.cache_kwarg: batched})
        for row, (state, n) in enumerate(zip(states, lengths, strict=True)):
            for index, layer in enumerate(batched.layers):
                state.layers[index].keys = layer.keys[row:row + 1, :, longest - n:].clone()
                state.layers[index].values = layer.values[row:row + 1, :, longest - n:].clone()
        return list(out.logits[:, -1])

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
