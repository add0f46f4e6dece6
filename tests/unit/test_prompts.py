"""Which inputs the engine tokenizes on the event loop and which it sends to its threads."""

from hfserve.runtime.generation.prompts import INLINE_CHARS, small


def test_short_texts_and_token_lists_are_small():
    assert small(["a sentence"]) is True
    assert small([[1, 2, 3], "two"]) is True


def test_long_or_many_texts_leave_the_loop():
    assert small(["x" * (INLINE_CHARS + 1)]) is False
    assert small(["x" * 100] * (INLINE_CHARS // 100 + 1)) is False


def test_unknown_item_types_count_as_large():
    assert small([{"text": "a"}]) is False


def test_chats_always_leave_the_loop_and_prompts_are_sized_by_their_text():
    """A chat template renders on a thread however short the chat (a template may be
    slow; the event loop must not wait for it); raw prompts are sized as texts."""
    from hfserve.runtime.events import GenerationInput
    from hfserve.runtime.generation.prompts import texts

    short = GenerationInput(messages=[{"role": "user", "content": "hi"}])
    assert small(texts(short)) is False
    assert small(texts(GenerationInput(prompt=[1, 2, 3]))) is True
    assert small(texts(GenerationInput(prompt="a short prompt"))) is True
    assert small(texts(GenerationInput(prompt="x" * (INLINE_CHARS + 1)))) is False
