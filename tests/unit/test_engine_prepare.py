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


def test_chat_messages_are_sized_by_their_text():
    from hfserve.runtime.engine import GenerationInput, _texts

    short = GenerationInput(messages=[{"role": "user", "content": "hi"}])
    assert _small(_texts(short)) is True
    parts = GenerationInput(messages=[{"role": "user", "content": [{"type": "text",
                                                                     "text": "hi"}]}])
    assert _small(_texts(parts)) is False
    tools = GenerationInput(messages=[{"role": "user", "content": "hi"}],
                            options={"tools": [{"type": "function"}]})
    assert _small(_texts(tools)) is False
    assert _small(_texts(GenerationInput(prompt=[1, 2, 3]))) is True
