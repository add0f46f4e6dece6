"""Text for the tokens a model process sends: its sequences without stop strings or logprobs
keep only tokens and the ends those decide (stop tokens, ``max_tokens``, the context), and
the server process decodes them here, as vLLM's front-end process detokenizes what its
engine core sends. At many streams the model process's loop bounds the rate on a GPU, and
the text work (an incremental decoder step, the delta, per token) is a large part of its
time per token; the server process has a core of its own."""

from __future__ import annotations

from hfserve.runtime.generation.sequence import Delta, Sequence, joined
from hfserve.skills.base import TextGenerator
from hfserve.types import SamplingParams


class Detokenizer:
    """One ``Sequence`` per request and choice, fed the tokens of its deltas (the same text,
    held-back characters and ``max_tokens`` logic as in the model process). Used from one
    thread (the pipe's reader), but ``start`` may come from any."""

    def __init__(self, codec: TextGenerator) -> None:
        self.codec = codec
        self._params: dict[str, SamplingParams] = {}
        self._seqs: dict[str, dict[int, Sequence]] = {}

    def start(self, request_id: str, params: SamplingParams) -> None:
        self._params[request_id] = params

    def end(self, request_id: str) -> None:
        self._params.pop(request_id, None)
        self._seqs.pop(request_id, None)

    def text(self, request_id: str, delta: Delta) -> Delta | None:
        """``delta`` with its text (None while all of it is held back)."""
        params = self._params.get(request_id)
        if params is None:          # ended here already (its stream is gone)
            return None
        seqs = self._seqs.setdefault(request_id, {})
        seq = seqs.get(delta.index)
        if seq is None:
            # No stop tokens here: the model process ended the sequence at them.
            seq = seqs[delta.index] = Sequence(
                index=delta.index, prompt_len=0, params=params,
                decode=self.codec.decode_tokens, eos_token_ids=frozenset(),
                stream=self.codec.text_stream())
        out = seq.extend(delta.tokens) if delta.tokens else None
        if delta.finish_reason and not seq.finished:
            end = seq.finish(delta.finish_reason)
            out = end if out is None else joined(out, end)
        return out
