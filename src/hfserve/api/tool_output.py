"""Chat output read for tool calls: ``message.tool_calls`` of a whole answer, and the
``delta.tool_calls`` chunks of a stream as OpenAI sends them (a call's first chunk has its
id, type and name with empty arguments, the next its arguments; text before a call goes
out as content)."""

from __future__ import annotations

from typing import Any

from hfserve.tool_calls import FORMATS, ToolCall, ToolCallParser, parse_text


def finish_reason(reason: str | None, calls: int) -> str | None:
    return "tool_calls" if calls and reason == "stop" else reason


def whole_message(parser: str, text: str, parallel: bool) -> tuple[dict[str, Any], int]:
    """The assistant message of a finished output, and how many calls it has."""
    content, calls = parse_text(FORMATS[parser], text)
    calls = calls if parallel else calls[:1]
    message: dict[str, Any] = {"role": "assistant",
                               "content": content if content.strip() or not calls else None}
    if calls:
        message["tool_calls"] = [c.to_dict() for c in calls]
    return message, len(calls)


class StreamedCalls:
    """The tool-call parsers of one streamed request, a parser per choice."""

    def __init__(self, parser: str, n: int, parallel: bool) -> None:
        self.parsers = [ToolCallParser(FORMATS[parser]) for _ in range(n)]
        self.sent = [0] * n                 # calls sent per choice
        self.parallel = parallel

    def choices(self, index: int, text: str, reason: str | None) -> list[dict[str, Any]]:
        """The chunk choices for choice ``index``'s new ``text`` (and its end)."""
        parser = self.parsers[index]
        pieces = parser.feed(text)
        if reason is not None:
            pieces += parser.finish()
        out: list[dict[str, Any]] = []
        for piece in pieces:
            if isinstance(piece, ToolCall):
                if self.sent[index] and not self.parallel:
                    continue                # one call only: the rest are dropped
                out += self._call(index, piece)
            elif out and "content" in out[-1]["delta"]:
                out[-1]["delta"]["content"] += piece
            else:
                out.append({"index": index, "delta": {"content": piece},
                            "finish_reason": None, "logprobs": None})
        if reason is not None:
            out.append({"index": index, "delta": {},
                        "finish_reason": finish_reason(reason, self.sent[index]),
                        "logprobs": None})
        return out

    def _call(self, index: int, call: ToolCall) -> list[dict[str, Any]]:
        k = self.sent[index]
        self.sent[index] += 1
        head = {"index": k, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        rest = {"index": k, "function": {"arguments": call.arguments}}
        return [{"index": index, "delta": {"tool_calls": [head]}, "finish_reason": None,
                 "logprobs": None},
                {"index": index, "delta": {"tool_calls": [rest]}, "finish_reason": None,
                 "logprobs": None}]
