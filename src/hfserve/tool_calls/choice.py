"""Which tool-call format a model writes, told by its chat template (what the template
asks the model to write) and its architecture."""

from __future__ import annotations


def parser_for_template(template: str | None, architecture: str,
                        renders_tools: bool) -> str:
    """The name of the format in ``FORMATS`` for a model. A template that does not render
    tools gets our Hermes-style preamble (``tool_calls/prompt.py``), so ``hermes``."""
    text = template or ""
    if not renders_tools or "<tool_call>" in text:
        return "hermes"
    if "[TOOL_CALLS]" in text:
        return "mistral"
    if "<|python_tag|>" in text or ("parameters" in text and "Llama" in architecture):
        return "llama3"
    return "json"
