"""Causal-LM text generation on torch: chat templates, prefill and per-step decode with the
model's own KV cache. The runtime's scheduler drives the loop."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.errors import InvalidRequest
from hfserve.skills import sampling
from hfserve.skills.base import GenerativeSkill, Placement
from hfserve.skills.torch_backend import load_torch_model
from hfserve.types import SamplingParams, Task, TokenChoice


def _cache_kwarg() -> str:
    """transformers renamed ``past_key_values`` to ``cache``; the output type tells which
    this installed version takes. The cache object is updated in place either way."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ \
        else "past_key_values"



def flatten_content(content: Any) -> str:
    """OpenAI message content (a string or a list of parts) -> text for a text-only model."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequest(f"this model accepts only text content, got {part.get('type')!r}",
                                 param="messages")
        parts.append(part.get("text", ""))
    return "".join(parts)


class GenerationSkill(GenerativeSkill):
    task: ClassVar[Task] = Task.TEXT_GENERATION

    def load(self, placement: Placement) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cache_kwarg = _cache_kwarg()
        self.placement = placement
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path),
                                                       gguf_file=self.spec.gguf_file)
        self.model = load_torch_model(AutoModelForCausalLM, self.spec, placement)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_token_ids = frozenset(
            int(e) for e in [*eos, self.tokenizer.eos_token_id] if e is not None)
        self.max_context = self.spec.max_context or 2048
        self._token_text: dict[int, str] = {}

    def unload(self) -> None:
        self.model = None

    # --- text <-> tokens -------------------------------------------------------------
    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidRequest("this model has no chat template; use /v1/completions",
                                 param="messages")
        rendered = [{**m, "content": flatten_content(m.get("content"))} for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                rendered, tokenize=False, add_generation_prompt=True,
                tools=options.get("tools"), **(options.get("chat_template_kwargs") or {}))
        except Exception as exc:  # template errors are the client's input problem
            raise InvalidRequest(f"chat template failed: {exc}", param="messages") from exc
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt)["input_ids"]

    def decode_tokens(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self._token_text[token_id] = self.tokenizer.decode([token_id])
        return text

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
