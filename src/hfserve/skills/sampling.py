"""Next-token choice from logits: temperature, top-k, top-p, penalties, seeded generators and
log-probabilities (taken from the model's own distribution, before any warping)."""

from __future__ import annotations

from hfserve.types import SamplingParams, TokenChoice


def apply_penalties(logits, params: SamplingParams, history: list[int]):
    import torch

    if not history or (params.presence_penalty == 0 and params.frequency_penalty == 0):
        return logits
    ids, counts = torch.tensor(history).unique(return_counts=True)
    logits = logits.clone()
    logits[ids] -= params.frequency_penalty * counts.to(logits.dtype)
    logits[ids] -= params.presence_penalty
    return logits


def top_choices(logprobs, k: int | None) -> list[tuple[int, float]] | None:
    if not k:
        return None
    values, ids = logprobs.topk(k)
    return [(int(i), float(v)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]


def sample(logits, params: SamplingParams, generator, history: list[int]) -> TokenChoice:
    """``logits`` is a 1-D float tensor over the vocabulary."""
    import torch

    logits = logits.float().cpu()
    logprobs = torch.log_softmax(logits, dim=-1)
    scores = apply_penalties(logits, params, history)
    if params.temperature == 0:
        token = int(scores.argmax())
    else:
        scores = scores / params.temperature
        if params.top_k and params.top_k < scores.shape[-1]:
            kth = scores.topk(params.top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cumulative = sorted_probs.cumsum(-1)
            drop = cumulative - sorted_probs > params.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        token = int(torch.multinomial(probs, 1, generator=generator))
    want = params.logprobs is not None
    return TokenChoice(token_id=token,
                       logprob=float(logprobs[token]) if want else None,
                       top=top_choices(logprobs, params.logprobs) if want else None)


def prompt_choices(logits, prompt_ids: list[int], k: int | None) -> list[TokenChoice]:
    """Log-probabilities of each prompt token given its prefix; the first has none."""
    import torch

    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = [TokenChoice(token_id=prompt_ids[0])]
    for pos, token in enumerate(prompt_ids[1:]):
        row = logprobs[pos]
        out.append(TokenChoice(token_id=token, logprob=float(row[token]),
                               top=top_choices(row, k)))
    return out
