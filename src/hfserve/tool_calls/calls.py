"""One parsed tool call, as OpenAI returns it: an id, a function name and its arguments
as a JSON string."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any


def new_id() -> str:
    return f"call_{secrets.token_hex(12)}"


@dataclass
class ToolCall:
    name: str
    arguments: str                  # JSON text of an object
    id: str = field(default_factory=new_id)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


def call_from(value: Any, arguments_keys: tuple[str, ...] = ("arguments", "parameters")
              ) -> ToolCall | None:
    """A call from a decoded JSON object naming a function and its arguments (an object,
    or JSON text of one); None for anything else."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) \
            or not value["name"]:
        return None
    key = next((k for k in arguments_keys if k in value), None)
    arguments = {} if key is None else value[key]
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    extra = set(value) - {"name", *arguments_keys}
    if extra - {"id", "type"}:
        return None
    return ToolCall(value["name"], json.dumps(arguments, ensure_ascii=False))


def calls_from(values: Any) -> list[ToolCall] | None:
    """Calls from one object or a list of them; None unless every one is a call."""
    items = values if isinstance(values, list) else [values]
    calls = [call_from(v) for v in items]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]
