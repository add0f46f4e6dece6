"""Next-token choice from logits: temperature, top-k, top-p, penalties, grammar masks of
constrained rows, seeded generators and log-probabilities (taken from the model's own
distribution, before any warping)."""

from __future__ import annotations

from typing import Any

from hfserve.engines.torch_lm.upload import upload
from hfserve.types import Pick, SamplingParams, TokenChoice


class TorchSampling:
    """Mixin: the GenerativeSkill sampling stages of a skill whose logits are torch rows."""

    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        return sample(logits, picks)

    def sample_later(self, logits: Any, picks: list[Pick]) -> Pending:
        return sample_later(logits, picks)

    def new_generator(self, seed: int | None) -> Any:
        return new_generator(seed)


def new_generator(seed: int | None) -> Any:
    """A CPU random generator for one sequence, seeded when ``seed`` is given."""
    import torch

    generator = torch.Generator(device="cpu")
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    return generator


def apply_penalties(logits, params: SamplingParams, history: list[int]):
    """``logits`` is one row; returns a penalised copy (or the row itself)."""
    import torch

    if not history or (params.presence_penalty == 0 and params.frequency_penalty == 0):
        return logits
    ids, counts = torch.tensor(history, device=logits.device).unique(return_counts=True)
    logits = logits.clone()
    logits[ids] -= params.frequency_penalty * counts.to(logits.dtype)
    logits[ids] -= params.presence_penalty
    return logits


def top_choices(logprobs, k: int | None) -> list[tuple[int, float]] | None:
    if not k:
        return None
    values, ids = logprobs.topk(k)
    return [(int(i), float(v)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]


def _warp(scores, picks: list[Pick]):
    """Temperature, top-k and top-p for every row at once (rows are sequences with their
    own params). Returns the kept probabilities sorted high to low, and their token ids."""
    import torch

    device = scores.device
    temperature = upload([p.params.temperature or 1.0 for p in picks], device)
    ranked, order = (scores / temperature[:, None]).sort(dim=-1, descending=True)
    top_k = upload([p.params.top_k or scores.shape[-1] for p in picks], device)
    rank = torch.arange(scores.shape[-1], device=device)
    ranked = ranked.masked_fill(rank[None, :] >= top_k[:, None], float("-inf"))
    probs = torch.softmax(ranked, dim=-1)
    top_p = upload([p.params.top_p for p in picks], device)
    before = probs.cumsum(-1) - probs           # mass of the tokens ranked above each one
    probs = probs.masked_fill(before > top_p[:, None], 0.0)
    return probs, order


def sample(logits, picks: list[Pick]) -> list[TokenChoice]:
    """``logits`` holds one row per sequence of a step (2-D, on the model's device); each
    pick names its row. Sampling runs on the device for all rows at once and copies only
    the chosen ids (and asked-for logprobs) back. A seeded sequence draws its uniform number
    from its own CPU generator, so its output does not depend on its neighbours."""
    return sample_later(logits, picks)()


def sample_later(logits, picks: list[Pick]) -> Pending:
    """``sample``, split where the host waits for the device: this queues the device work
    and returns the call that copies the choices back."""
    import torch

    # One pass over the picks (at hundreds of sequences a step, each pass costs).
    rows, penalised, drawn, wanted, guided = [], [], [], [], []
    for i, pick in enumerate(picks):
        params = pick.params
        rows.append(pick.row)
        if pick.grammar is not None:
            guided.append(i)
        if pick.history and (params.presence_penalty or params.frequency_penalty):
            penalised.append(i)
        if params.temperature != 0:
            drawn.append(i)
        if params.logprobs is not None:
            wanted.append(i)
    scores = logits.float()
    if rows != list(range(scores.shape[0])):
        scores = scores[upload(rows, logits.device)]
    raw = scores
    if penalised:
        scores = scores.clone()
        for i in penalised:
            scores[i] = apply_penalties(scores[i], picks[i].params, picks[i].history)
    if guided:
        from hfserve.text.grammar import apply_masks

        if scores is raw:
            scores = scores.clone()
        apply_masks(scores, guided, [picks[i].grammar for i in guided])
    tokens = scores.argmax(-1)
    if drawn:
        probs, order = _warp(scores[drawn], [picks[i] for i in drawn])
        uniform = torch.cat([torch.rand(1, generator=picks[i].generator) for i in drawn])
        cumulative = probs.cumsum(-1)
        target = upload(uniform, cumulative.device)[:, None] \
            * cumulative[:, -1:]
        slot = torch.searchsorted(cumulative, target).clamp_(max=probs.shape[-1] - 1)
        tokens[drawn] = order.gather(-1, slot)[:, 0]
    logprobs = torch.log_softmax(raw[wanted], dim=-1) if wanted else None
    return Pending(tokens, logprobs, wanted, picks, guided)


class Pending:
    """A step's sampling queued on the device: ``tokens`` holds the chosen ids there (a
    next step can take them from there), and calling it returns the choices on the host.

    On CUDA the ids are copied to pinned host memory as soon as they are queued, and the
    call waits for that copy alone: ``tokens.tolist()`` would wait for everything queued on
    the device by then, a next step fed with these tokens included."""

    def __init__(self, tokens: Any, logprobs: Any, wanted: list[int], picks: list[Pick],
                 guided: list[int] | None = None) -> None:
        import torch

        self.tokens, self._logprobs, self._wanted, self._picks = tokens, logprobs, wanted, picks
        self._guided = guided or []
        self._host, self._copied = tokens, None
        if tokens.is_cuda:
            self._host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
            self._host.copy_(tokens, non_blocking=True)
            self._copied = torch.cuda.Event()
            self._copied.record()

    def __call__(self) -> list[TokenChoice]:
        if self._copied is not None:
            self._copied.synchronize()
        ids = self._host.tolist()
        for i in self._guided:      # the grammar moves on before the row's next mask
            self._picks[i].grammar.advance(ids[i])
        out = [TokenChoice(t) for t in ids]
        if self._logprobs is not None:
            table = self._logprobs.cpu()
            for j, i in enumerate(self._wanted):
                out[i].logprob = float(table[j, ids[i]])
                out[i].top = top_choices(table[j], self._picks[i].params.logprobs)
        return out


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
