"""Token chunks written from a template are the bytes json.dumps writes for the same chunk."""

from __future__ import annotations

import json

import pytest

from hfserve.api.generation import TokenChunks

BASE = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1795788037,
        "model": "Smol \"quoted\" é"}
TEXTS = ["", " the", 'say "hi"\n', "tab\there \\ back", "é 中文 🙂", "\x00\x1f\u2028", "a</script>"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("reason", [None, "stop", "length"])
@pytest.mark.parametrize("index", [0, 3])
def test_chat_token_chunk_is_the_json_of_the_chunk(text: str, reason: str | None,
                                                    index: int) -> None:
    expected = {**BASE, "choices": [{"index": index, "delta": {"content": text},
                                     "finish_reason": reason, "logprobs": None}]}
    got = TokenChunks(BASE, "content")(index, text, reason)
    assert got == json.dumps(expected, ensure_ascii=False)
    assert json.loads(got) == expected


@pytest.mark.parametrize("text", TEXTS)
def test_completion_token_chunk_is_the_json_of_the_chunk(text: str) -> None:
    base = {**BASE, "object": "text_completion"}
    expected = {**base, "choices": [{"index": 1, "text": text, "finish_reason": "stop",
                                     "logprobs": None}]}
    got = TokenChunks(base, "text")(1, text, "stop")
    assert got == json.dumps(expected, ensure_ascii=False)
