"""Log-probabilities of whole token sequences on an OpenVINO IR, beside openvino-genai's
pipeline: that pipeline reports only the chosen token's log-probability, so prompt logprobs
(completions ``echo``) and the top alternatives of generated tokens come from one forward of
the same exported weights over the whole sequence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hfserve.engines.torch_lm.sampling import top_choices
from hfserve.types import TokenChoice

# Positions turned into log-probabilities at a time: a 2,048-token sequence of a
# 150k-token vocabulary has 1.2 GB of logits; a copy of all of them would double that.
ROWS = 256


class SequenceScorer:
    """``score(ids, start, k)``: the model's log-probability of each of ``ids[start:]``
    given the tokens before it, and the ``k`` likeliest tokens at its place.

    ``load`` returns optimum-intel's ``OVModelForCausalLM`` on the pipeline's IR folder,
    compiled with the skill's device and options. It is called on first use only: the
    model is a second compiled copy of the weights (openvino-genai rewrites its own copy for
    paged attention, so the two cannot share one), and most servers never score. optimum's
    class rather than a bare compiled model because the IR is stateful (its KV cache lives in
    the infer request) and takes ``position_ids`` and ``beam_idx`` besides the ids: a call
    without a cache resets that state and fills those inputs, so every call scores its
    sequence from scratch (two calls on the same ids give the same logits, bit for bit)."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._model: Any = None

    def score(self, ids: list[int], start: int, k: int | None) -> list[TokenChoice]:
        import torch

        if not 1 <= start <= len(ids):
            raise ValueError(f"start {start} is outside 1..{len(ids)}")
        if start == len(ids):
            return []
        if self._model is None:
            self._model = self._load()
        tokens = torch.tensor([ids], dtype=torch.int64)
        logits = self._model(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits[0]
        out: list[TokenChoice] = []
        # Row pos - 1 holds the distribution of the token at pos.
        last = len(ids) - 1
        for first in range(start - 1, last, ROWS):
            rows = torch.log_softmax(logits[first:min(first + ROWS, last)].float(), dim=-1)
            for offset, row in enumerate(rows):
                token = ids[first + offset + 1]
                out.append(TokenChoice(token_id=token, logprob=float(row[token]),
                                       top=top_choices(row, k)))
        return out

    def unload(self) -> None:
        self._model = None
