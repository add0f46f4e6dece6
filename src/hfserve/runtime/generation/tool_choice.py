"""``tools`` and ``tool_choice`` of a chat request, below the seam: which tools the
template sees, whether the output is read for calls (and in which format), and, for
``required`` or a named function, the constraint that makes the model write a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hfserve.errors import InvalidRequest
from hfserve.runtime.events import GenerationInput
from hfserve.tool_calls import FORMATS
from hfserve.types import Constraint


def apply_tool_choice(request: GenerationInput, parser: str,
                      check: Callable[[Constraint], None]) -> str | None:
    """Settle ``request``'s tools for a model whose calls are in format ``parser``:
    returns the format to read calls in (None: the output is plain text). ``check``
    refuses a constraint the model cannot enforce (a function's parameters that are no
    schema the grammar engine compiles are then a 400 on ``tools``)."""
    options = request.options
    tools: list[dict[str, Any]] | None = options.get("tools") or None
    choice = options.get("tool_choice")
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if choice is None:
        choice = "auto" if tools else "none"
    if tools is None:
        if choice != "none":
            raise InvalidRequest("tool_choice needs tools", param="tool_choice")
        return None
    if choice == "none":
        # The model is not to call anything: it is not told of the tools either.
        request.options = {**options, "tools": None}
        return None
    names = [t["function"]["name"] for t in tools]
    if named is not None and named not in names:
        raise InvalidRequest(f"tool_choice names {named!r}, which is not among the tools",
                             param="tool_choice")
    fmt = FORMATS[parser]
    if choice == "required" or named is not None:
        constraint = fmt.forced(tools, named, bool(options.get("parallel_tool_calls", True)))
        try:
            check(constraint)
        except InvalidRequest as exc:
            raise InvalidRequest(f"the tools' parameters: {exc.message}",
                                 param="tools") from None
        request.params.constraint = constraint
    return parser
