"""Text made in the server process for a model process's tokens
(runtime/generation/detokenizer.py): the same text, held-back characters and ends as a sequence
decoding where it runs."""

from __future__ import annotations

from test_sequence import COMPLETES, EOS, PARTIAL, FakeStream, decode

from hfserve.runtime.generation.detokenizer import Detokenizer
from hfserve.runtime.generation.sequence import Delta, Sequence
from hfserve.types import SamplingParams, TokenChoice


class Codec:
    decode_tokens = staticmethod(decode)

    @staticmethod
    def text_stream() -> FakeStream:
        return FakeStream()


def sequence(params: SamplingParams, detokenize: bool, index: int = 0) -> Sequence:
    return Sequence(index=index, prompt_len=3, params=params, decode=decode,
                    eos_token_ids=frozenset({EOS}), stream=FakeStream(),
                    detokenize=detokenize)


def deltas(seq: Sequence, steps: list[list[int]]) -> list[Delta]:
    out = [seq.extend([TokenChoice(token_id=t) for t in step]) for step in steps]
    return [d for d in out if d is not None]


STEPS = [[1], [PARTIAL], [COMPLETES, 2], [3, 4, 5], [8]]


def test_the_server_makes_the_text_the_model_process_would_have() -> None:
    params = SamplingParams(max_tokens=8)
    here = deltas(sequence(params, True), STEPS)
    text = Detokenizer(Codec())
    text.start("r1", params)
    sent = deltas(sequence(params, False), STEPS)
    assert all(d.text is None for d in sent) and len(sent) == len(STEPS)
    made = [text.text("r1", d) for d in sent]
    # The step ending inside a character has nothing to send yet; its token goes later.
    assert made[1] is None
    got = [d for d in made if d is not None]
    assert [d.text for d in got] == [d.text for d in here] == ["Hel", "élo", " world!", " there"]
    assert [[t.token_id for t in d.tokens] for d in got] == [
        [t.token_id for t in d.tokens] for d in here]
    assert got[-1].finish_reason == here[-1].finish_reason == "length"


def test_an_end_the_model_process_decided_flushes_the_text() -> None:
    """A stop token (never sent) or an end by the context comes as a delta with no tokens;
    each choice of a request has its own text."""
    params = SamplingParams(max_tokens=50)
    text = Detokenizer(Codec())
    text.start("r1", params)
    first = text.text("r1", Delta(0, None, [TokenChoice(token_id=1)]))
    other = text.text("r1", Delta(1, None, [TokenChoice(token_id=3)]))
    held = text.text("r1", Delta(0, None, [TokenChoice(token_id=PARTIAL)]))
    end = text.text("r1", Delta(0, None, [], "stop"))
    assert (first.text, other.text, held) == ("Hel", " wor", None)
    assert end.text == "\ufffd" and end.finish_reason == "stop"
    assert [t.token_id for t in end.tokens] == [PARTIAL]
    text.end("r1")
    assert text.text("r1", Delta(1, None, [TokenChoice(token_id=4)])) is None
