"""How model families write tool calls, and the constraint that makes a model write one
(``tool_choice`` required or a named function) in its own format.

- ``hermes`` (Hermes, Qwen 2/2.5/3, and our own preamble for templates without tools):
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, any number, text around.
- ``llama3`` (Llama 3.1+ JSON tool calling): the output is ``{"name": ...,
  "parameters": {...}}`` (after an optional ``<|python_tag|>``), several joined by ``;``.
- ``mistral``: ``[TOOL_CALLS]`` then a JSON list of ``{"name", "arguments"}``.
- ``json``: the output is one such object, or a list of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hfserve.tool_calls.calls import ToolCall, calls_from
from hfserve.types import Constraint


def _json_values(text: str, separator: str = "") -> list[Any] | None:
    """JSON values one after another (whitespace and ``separator`` between); None unless
    the whole text is such."""
    decoder = json.JSONDecoder()
    values, at, text = [], 0, text.strip()
    while at < len(text):
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError:
            return None
        values.append(value)
        while at < len(text) and (text[at].isspace() or text[at] == separator and separator):
            at += 1
    return values or None


@dataclass(frozen=True)
class Format:
    name: str
    starts: tuple[str, ...]         # what opens a call block
    end: str | None = None          # what closes one (None: the output's end)
    at_start_only: bool = False     # a block only where the output starts
    arguments_key: str = "arguments"
    separator: str = ""             # between calls of one block
    prefix: str = ""                # what a forced call is written after
    suffix: str = ""                # and before
    list_block: bool = False        # a block is a JSON list of calls

    def decode(self, block: str) -> list[ToolCall] | None:
        """The calls of one block (the text between its start and end); None when it is
        not one (it is then left to the client as text)."""
        values = _json_values(block, self.separator)
        if values is None:
            return None
        if len(values) == 1 and isinstance(values[0], list):
            values = values[0]
        return calls_from(values)

    def forced(self, tools: list[dict[str, Any]], name: str | None,
               parallel: bool) -> Constraint:
        """The output constraint of a forced call: of function ``name``, or of any of
        ``tools`` (one call; a list of one or more where this format writes a list)."""
        chosen = [t["function"] for t in tools if name is None or t["function"]["name"] == name]
        options = [{"type": "object",
                    "properties": {"name": {"const": f["name"]},
                                   self.arguments_key: f.get("parameters") or {
                                       "type": "object"}},
                    "required": ["name", self.arguments_key],
                    "additionalProperties": False} for f in chosen]
        schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        if self.list_block:
            schema = {"type": "array", "items": schema, "minItems": 1,
                      **({} if parallel else {"maxItems": 1})}
        return Constraint("json_schema", json.dumps(schema, sort_keys=True),
                          prefix=self.prefix, suffix=self.suffix)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("hermes", ("<tool_call>",), end="</tool_call>", prefix="<tool_call>\n",
           suffix="\n</tool_call>"),
    Format("llama3", ("<|python_tag|>", "{"), at_start_only=True,
           arguments_key="parameters", separator=";"),
    Format("mistral", ("[TOOL_CALLS]",), prefix="[TOOL_CALLS]", list_block=True),
    Format("json", ("{", "["), at_start_only=True),
)}
