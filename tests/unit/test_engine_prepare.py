"""Which inputs the engine tokenizes on the event loop and which it sends to its threads."""

from hfserve.runtime.engine import INLINE_CHARS, _small


def test_short_texts_and_token_lists_are_small():
    assert _small(["a sentence"]) is True
    assert _small([[1, 2, 3], "two"]) is True


def test_long_or_many_texts_leave_the_loop():
    assert _small(["x" * (INLINE_CHARS + 1)]) is False
    assert _small(["x" * 100] * (INLINE_CHARS // 100 + 1)) is False


def test_unknown_item_types_count_as_large():
    assert _small([{"text": "a"}]) is False


def test_chats_always_leave_the_loop_and_prompts_are_sized_by_their_text():
    """A chat template renders on a thread however short the chat (a template may be
    slow; the event loop must not wait for it); raw prompts are sized as texts."""
    from hfserve.runtime.engine import GenerationInput, _texts

    short = GenerationInput(messages=[{"role": "user", "content": "hi"}])
    assert _small(_texts(short)) is False
    assert _small(_texts(GenerationInput(prompt=[1, 2, 3]))) is True
    assert _small(_texts(GenerationInput(prompt="a short prompt"))) is True
    assert _small(_texts(GenerationInput(prompt="x" * (INLINE_CHARS + 1)))) is False
