"""A generation request's prompt, before it is queued: which inputs are small enough to
tokenize on the event loop, its text checked, encoded (a chat through the model's template),
what the backend can do for it, and how many tokens it may ask for."""

from __future__ import annotations

from typing import Any

from hfserve.errors import ContextLengthExceeded, InvalidRequest
from hfserve.runtime.events import GenerationInput
from hfserve.skills.base import TextGenerator
from hfserve.types import SamplingParams
from hfserve.validation import require_unicode

INLINE_CHARS = 2048     # inputs up to this size are tokenized on the event loop


def small(items: list[Any]) -> bool:
    """Few enough characters (or token ids) that preparing them inline beats a thread hop."""
    total = 0
    for item in items:
        total += len(item) if isinstance(item, str | list) else INLINE_CHARS + 1
        if total > INLINE_CHARS:
            return False
    return True


def check_count(count: int, most: int, param: str) -> None:
    """A 400 for a request with more inputs than a request may have."""
    if count > most:
        raise InvalidRequest(f"this request has {count} inputs; a request may have at "
                             f"most {most}", param=param, code="too_many_inputs")


def texts(request: GenerationInput) -> list[Any]:
    """What a generation request tokenizes, for sizing; a chat counts as large, so that
    its template never renders on the event loop (a template may be slow: the renderer
    bounds it, and other requests are not to wait for it meanwhile)."""
    if request.messages is None:
        return [request.prompt]
    return [None]


def check_messages(messages: list[dict[str, Any]]) -> None:
    """Every text of a chat is valid Unicode (a 400 before any tokenizer sees it)."""
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        for part in parts:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                require_unicode(text, "messages")
        if isinstance(message.get("name"), str):
            require_unicode(message["name"], "messages")


def check_capabilities(skill: TextGenerator, params: SamplingParams) -> None:
    skill.check_constraint(params.constraint)
    backend = skill.placement.backend
    if params.logprobs and not skill.supports_top_logprobs:
        raise InvalidRequest(f"top_logprobs are not available on this model's backend "
                             f"({backend}); serve it with backend: torch",
                             param="top_logprobs")
    if params.prompt_logprobs is not None and not skill.supports_prompt_logprobs:
        raise InvalidRequest(f"prompt logprobs (echo with logprobs) are not available on "
                             f"this model's backend ({backend}); serve it with "
                             "backend: torch", param="logprobs")

def encode(skill: TextGenerator, request: GenerationInput, trust_template: bool
           ) -> tuple[list[int], dict[str, Any] | None]:
    """The prompt's token ids: a chat rendered through the model's template (a request's
    own template only when the operator trusts them), or a prompt's text or ids, checked;
    with the model inputs its media became (``TextGenerator.encode_chat_inputs``)."""
    media = None
    if request.messages is not None:
        check_messages(request.messages)
        ids, media = skill.encode_chat_inputs(request.messages, {
            **request.options,
            "trust_request_chat_template": trust_template})
    elif isinstance(request.prompt, str):
        ids = skill.encode_text(require_unicode(request.prompt, "prompt"))
    else:
        ids = list(request.prompt or [])
        skill.check_token_ids(ids)
    if not ids:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    skill.check_token_ids(list(request.params.stop_token_ids), "stop_token_ids")
    return ids, media

def max_tokens(skill: TextGenerator, default: int, prompt_len: int, asked: int | None) -> int:
    """``max_tokens`` as asked, else the model's default within the room left; a 400
    when the prompt leaves no room for what was asked."""
    room = skill.max_context - prompt_len
    if room <= 0 or (asked is not None and asked > room):
        raise ContextLengthExceeded(
            f"this model's maximum context length is {skill.max_context} tokens; the "
            f"prompt has {prompt_len} tokens and {asked or 1} more were requested",
            param="max_tokens" if asked else "messages")
    return min(default, room) if asked is None else asked
