"""One generated sequence (runtime/generation/sequence.py): text deltas, stops, limits, hold-back;
every test runs with the windowed decoding and with a skill's incremental decoder."""

from __future__ import annotations

import sys

import pytest

from hfserve.runtime.generation.sequence import Delta, Sequence
from hfserve.types import SamplingParams, TokenChoice

EOS = 0
PARTIAL = 6      # the first half of a two-token character
COMPLETES = 7    # the second half: 6 then 7 decode to "é"
PIECES = {1: "Hel", 2: "lo", 3: " wor", 4: "ld", 5: "!", 8: " there"}


def decode(ids: list[int]) -> str:
    """Fake tokenizer: fixed strings per id, eos skipped, 6+7 form one character."""
    out: list[str] = []
    for pos, token in enumerate(ids):
        if token in (EOS, COMPLETES):
            continue
        if token == PARTIAL:
            whole = pos + 1 < len(ids) and ids[pos + 1] == COMPLETES
            out.append("é" if whole else "\ufffd")
        else:
            out.append(PIECES[token])
    return "".join(out)


class FakeStream:
    """A tokenizer's incremental decoder over the fake tokenizer: the text each token
    completes, None while a character is incomplete."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.prefix = self.read = 0

    def step(self, token: int) -> str | None:
        self.ids.append(token)
        done = decode(self.ids[self.prefix:self.read])
        new = decode(self.ids[self.prefix:])[len(done):]
        if not new or new.endswith("\ufffd"):
            return None
        self.prefix, self.read = self.read, len(self.ids)
        return new


STREAMED = False


@pytest.fixture(autouse=True, params=["windowed", "streamed"])
def _decoding(request, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "STREAMED", request.param == "streamed")


def test_both_decodings_run(request) -> None:
    assert (make().stream is not None) == ("streamed" in request.node.name)


def make(**params) -> Sequence:
    return Sequence(index=0, prompt_len=3, params=SamplingParams(**params), decode=decode,
                    eos_token_ids=frozenset({EOS}), stream=FakeStream() if STREAMED else None)


def feed(seq: Sequence, tokens: list[int]) -> list[Delta | None]:
    return [seq.append(TokenChoice(token_id=t, logprob=-0.5)) for t in tokens]


def text_of(deltas: list[Delta | None]) -> str:
    return "".join(d.text for d in deltas if d is not None)


def test_deltas_add_up_to_the_decoded_text() -> None:
    seq = make(max_tokens=10)
    deltas = feed(seq, [1, 2, 3, 4])
    assert [d.text for d in deltas] == ["Hel", "lo", " wor", "ld"]
    assert not seq.finished
    assert seq.token_ids == [1, 2, 3, 4]
    assert all(d.index == 0 and d.finish_reason is None for d in deltas)


def test_each_delta_carries_the_token_choices_it_covers() -> None:
    seq = make(max_tokens=10)
    first, second = feed(seq, [1, 2])
    assert [t.token_id for t in first.tokens] == [1]
    assert [t.token_id for t in second.tokens] == [2]


def test_stop_string_cuts_the_text_and_finishes_stop() -> None:
    seq = make(max_tokens=10, stop=("wor",))
    deltas = feed(seq, [1, 2, 3])
    assert text_of(deltas) == "Hello "
    assert seq.finish_reason == "stop"
    assert deltas[-1].finish_reason == "stop"


def test_stop_string_split_across_tokens_is_never_emitted() -> None:
    seq = make(max_tokens=10, stop=("world",))
    deltas = feed(seq, [1, 2, 3])
    # " wor" may be the start of "world": only the space goes out.
    assert deltas[-1] is not None and deltas[-1].text == " "
    deltas += feed(seq, [4])
    assert text_of(deltas) == "Hello "
    assert "wor" not in text_of(deltas)
    assert seq.finish_reason == "stop"
    assert deltas[-1].finish_reason == "stop"


def test_held_back_prefix_is_released_when_it_is_not_a_stop() -> None:
    seq = make(max_tokens=10, stop=("world",))
    deltas = feed(seq, [1, 2, 3, 5])
    assert deltas[-1].text == "wor!"
    assert text_of(deltas) == "Hello wor!"
    assert [t.token_id for t in deltas[-1].tokens] == [5]
    assert not seq.finished


def test_text_shorter_than_a_stop_string_waits_while_it_may_begin_it() -> None:
    deltas = feed(make(max_tokens=10, stop=("Hellx",)), [1, 2])
    assert deltas[0] is None                   # "Hel" may begin "Hellx"
    assert deltas[1].text == "Hello"           # "Hello" does not, nor does any end of it
    deltas = feed(make(max_tokens=10, stop=("lol", "xyz")), [1, 2])
    assert [d.text for d in deltas] == ["He", "l"]     # "l", then "lo", may begin "lol"


def test_earliest_of_several_stop_strings_wins() -> None:
    seq = make(max_tokens=10, stop=("ld", "lo"))
    deltas = feed(seq, [1, 2])
    assert text_of(deltas) == "Hel"
    assert seq.finish_reason == "stop"


def test_eos_finishes_stop_without_adding_text_or_a_token() -> None:
    seq = make(max_tokens=10)
    deltas = feed(seq, [1, EOS])
    assert deltas[-1] is not None
    assert deltas[-1].text == ""
    assert deltas[-1].finish_reason == "stop"
    assert seq.token_ids == [1]
    assert text_of(deltas) == "Hel"


def test_eos_releases_text_held_back_for_a_stop_string() -> None:
    seq = make(max_tokens=10, stop=("world",))
    deltas = feed(seq, [1, 2, 3, EOS])
    assert text_of(deltas) == "Hello wor"
    assert seq.finish_reason == "stop"


def test_ignore_eos_keeps_generating() -> None:
    seq = make(max_tokens=10, ignore_eos=True)
    deltas = feed(seq, [1, EOS, 2])
    assert not seq.finished
    assert seq.token_ids == [1, EOS, 2]
    assert text_of(deltas) == "Hello"


def test_max_tokens_finishes_length() -> None:
    seq = make(max_tokens=2)
    deltas = feed(seq, [1, 2])
    assert seq.finish_reason == "length"
    assert deltas[-1].finish_reason == "length"
    assert text_of(deltas) == "Hello"


def test_max_tokens_flushes_held_back_text() -> None:
    seq = make(max_tokens=3, stop=("world",))
    deltas = feed(seq, [1, 2, 3])
    assert seq.finish_reason == "length"
    assert text_of(deltas) == "Hello wor"


def test_incomplete_character_is_held_back() -> None:
    seq = make(max_tokens=10)
    deltas = feed(seq, [1, PARTIAL])
    assert deltas[1] is None
    deltas += feed(seq, [COMPLETES])
    assert deltas[-1].text == "é"
    assert text_of(deltas) == "Helé"
    assert "\ufffd" not in text_of(deltas)
    # The token held back with the partial character is delivered with the completion.
    assert [t.token_id for t in deltas[-1].tokens] == [PARTIAL, COMPLETES]


def test_stop_token_ids_finish_stop_even_with_ignore_eos() -> None:
    seq = make(max_tokens=10, stop_token_ids=(5,), ignore_eos=True)
    deltas = feed(seq, [1, 5])
    assert seq.finish_reason == "stop"
    assert "!" not in text_of(deltas)
    assert seq.token_ids == [1]


def test_finish_early_sends_what_was_held_back() -> None:
    seq = make(max_tokens=10, stop=("world",))
    deltas = feed(seq, [1, 2, 3])
    last = seq.finish("abort")
    assert last.finish_reason == "abort"
    assert text_of([*deltas, last]) == "Hello wor"
    assert seq.finished


def test_counts_every_sampled_token_and_keeps_the_last() -> None:
    seq = make(max_tokens=10)
    feed(seq, [1, 8, EOS])
    assert seq.generated == 3
    assert seq.last_token == EOS
    assert seq.token_ids == [1, 8]


def choices(tokens: list[int]) -> list[TokenChoice]:
    return [TokenChoice(token_id=t, logprob=-0.5) for t in tokens]


def test_several_steps_extend_a_sequence_as_one_delta() -> None:
    seq = make(max_tokens=10)
    delta = seq.extend(choices([1, 2, PARTIAL]))
    assert delta.text == "Hello" and [t.token_id for t in delta.tokens] == [1, 2, PARTIAL]
    delta = seq.extend(choices([COMPLETES, 3, 4]))
    assert delta.text == "é world" and not seq.finished


@pytest.mark.parametrize("tokens, text, reason, kept", [
    ([1, 2, EOS, 3], "Hello", "stop", [1, 2]),             # an end token mid-way
    ([1, 2, 3, 4], "Hello", "length", [1, 2]),             # max_tokens mid-way
])
def test_tokens_after_the_end_of_a_sequence_are_not_added(tokens, text, reason, kept) -> None:
    seq = make(max_tokens=2 if reason == "length" else 10)
    delta = seq.extend(choices(tokens))
    assert (delta.text, delta.finish_reason, seq.token_ids) == (text, reason, kept)


def test_a_stop_string_within_several_steps_ends_the_text_where_it_starts() -> None:
    seq = make(max_tokens=10, stop=("wor",))
    delta = seq.extend(choices([1, 2, 3, 4, 5]))
    assert (delta.text, delta.finish_reason) == ("Hello ", "stop")
    assert seq.token_ids == [1, 2, 3]


def test_without_detokenizing_each_step_sends_its_tokens_and_the_ends_they_decide() -> None:
    """In a model process the text is left to the server: every extend sends its tokens
    (an incomplete character's too), stop tokens and max_tokens still end the sequence."""
    def tokens_only(**params) -> Sequence:
        return Sequence(index=0, prompt_len=3, params=SamplingParams(**params), decode=decode,
                        eos_token_ids=frozenset({EOS}), detokenize=False)

    seq = tokens_only(max_tokens=4)
    first = seq.append(TokenChoice(token_id=PARTIAL))
    assert first.text is None and [t.token_id for t in first.tokens] == [PARTIAL]
    last = seq.extend([TokenChoice(token_id=t) for t in (COMPLETES, 1, 2, 3)])
    assert last.text is None and [t.token_id for t in last.tokens] == [COMPLETES, 1, 2]
    assert last.finish_reason == "length" and seq.text == ""
    seq = tokens_only(max_tokens=9)
    seq.append(TokenChoice(token_id=1))
    end = seq.append(TokenChoice(token_id=EOS))
    assert end == Delta(0, None, [], "stop") and seq.token_ids == [1]
