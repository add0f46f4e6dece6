"""Encoder-decoder generation on torch (T5, FLAN-T5, mT5, BART, Marian...): summarise,
translate, text2text. The runtime's scheduler drives it like any generative skill, so it
streams, stops, samples and cancels the same way and serves /v1/completions and TGI's routes.

A sequence's state is its encoder output and its own decoder cache. Each sequence runs its
own decoder forward in a step: their caches grow from different starts, and stacking them
would mean padding the self-attention cache and the encoder output of every row; on a CPU a
tiny decoder step costs little more alone, and each sequence's result stays exactly what
``generate`` gives for it alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.torch_backend import load_torch_model
from hfserve.engines.torch_lm.sampling import TorchSampling
from hfserve.errors import ContextLengthExceeded
from hfserve.skills.base import GenerativeSkill, input_limit
from hfserve.text.codec import HFTextCodec
from hfserve.types import Task, TokenChoice

# Where a config gives no length: what T5's tokenizer allows (relative positions have none).
DEFAULT_LENGTH = 512


@dataclass
class Seq2SeqState:
    encoded: Any            # transformers' encoder output for one prompt
    cache: Any              # the decoder's own cache (self- and cross-attention)


class Seq2SeqSkill(HFTextCodec, TorchSampling, GenerativeSkill):
    task: ClassVar[Task] = Task.TEXT2TEXT
    # A prompt in, text out: what /v1/completions and TGI's /generate ask of a model.
    also_serves: ClassVar[tuple[Task, ...]] = (Task.TEXT_GENERATION,)
    supports_prompt_logprobs: ClassVar[bool] = False     # the prompt is encoded, not predicted

    def load(self, placement: Placement) -> None:
        from transformers import AutoModelForSeq2SeqLM

        self.placement = placement
        self.model = load_torch_model(AutoModelForSeq2SeqLM, self.spec, placement)
        generation = self.model.generation_config
        self.eos_token_ids = self.load_tokenizer(self.spec, generation.eos_token_id,
                                                 placement.options.cache_dir)
        config = self.model.config
        start = generation.decoder_start_token_id
        self.start_id = int(start if start is not None else config.decoder_start_token_id)
        positions = getattr(config, "max_position_embeddings", None)
        self.max_input = input_limit(positions, getattr(self.tokenizer, "model_max_length", None),
                                     self.spec.max_context, default=DEFAULT_LENGTH)
        self.max_output = positions if isinstance(positions, int) else DEFAULT_LENGTH
        # The scheduler counts prompt and output against one length: here they are apart.
        self.max_context = self.max_input + self.max_output

    def unload(self) -> None:
        self.model = None

    def info(self) -> dict[str, Any]:
        return {**super().info(), "max_input_length": self.max_input,
                "max_new_tokens": self.max_output}

    # --- model stages ----------------------------------------------------------------
    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None]
                ) -> tuple[list[Any], Any, list[list[TokenChoice] | None]]:
        import torch
        from transformers import DynamicCache, EncoderDecoderCache

        states, rows = [], []
        for ids in prompts:
            if len(ids) > self.max_input:
                raise ContextLengthExceeded(
                    f"the prompt has {len(ids)} tokens; this model reads at most "
                    f"{self.max_input}", param="prompt")
            with torch.inference_mode():
                tokens = torch.tensor([ids], device=self.placement.device)
                encoded = self.model.get_encoder()(input_ids=tokens)
                state = Seq2SeqState(encoded, EncoderDecoderCache(DynamicCache(),
                                                                  DynamicCache()))
                rows.append(self._step(state, self.start_id))
            states.append(state)
        return states, torch.stack(rows), [None] * len(prompts)

    def decode(self, states: list[Any], last_tokens: list[int]) -> Any:
        import torch

        with torch.inference_mode():
            return torch.stack([self._step(state, token)
                                for state, token in zip(states, last_tokens, strict=True)])

    def _step(self, state: Seq2SeqState, token: int) -> Any:
        import torch

        out = self.model(encoder_outputs=state.encoded, past_key_values=state.cache,
                         decoder_input_ids=torch.tensor([[token]], device=self.placement.device),
                         use_cache=True)
        state.cache = out.past_key_values
        return out.logits[0, -1].float()
