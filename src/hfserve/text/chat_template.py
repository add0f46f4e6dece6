"""Chat templates rendered within a budget, with request kwargs limited to the template's own
variables.

transformers renders a template in jinja2's sandbox, which stops a template reaching Python
internals but not one that spends seconds or gigabytes: ``{{ 'hello ' * 2000000 }}`` or a
loop that doubles a string. A server renders templates for every chat request, so this
module renders them itself (with transformers' own filters, globals and extensions, so the
output is the same) in a sandbox that also bounds time, output size and the sizes that
operators, filters and methods are asked to build. It renders off the event loop (the
engine's prepare pool), so even a slow template never stalls other requests."""

from __future__ import annotations

import inspect
import re
import threading
import time
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hfserve.errors import InvalidRequest
from hfserve.validation import require_unicode

RENDER_SECONDS = 2.0            # wall time one render may take
MIN_OUTPUT_CHARS = 1 << 20      # a render may write this much, or OUTPUT_RATIO x its input
OUTPUT_RATIO = 4
# Names the server sets itself: the arguments of the template call and what it puts in the
# template's context. A request may not set them through ``chat_template_kwargs``.
CONTEXT_NAMES = frozenset({"messages", "tools", "documents", "add_generation_prompt",
                           "bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                           "cls_token", "mask_token", "additional_special_tokens"})
_WIDTH = re.compile(r"[%:][^%}\s]*?(\d{6,})")   # a width or precision of 6+ digits

_budget = threading.local()


@lru_cache(maxsize=1)
def _call_parameters() -> frozenset[str]:
    from transformers import PreTrainedTokenizerBase

    params = inspect.signature(PreTrainedTokenizerBase.apply_chat_template).parameters
    return frozenset(p for p in params if p not in ("self", "kwargs"))


class RenderBudgetExceeded(SecurityError):
    pass


def _check(size: int = 0) -> None:
    if size > getattr(_budget, "chars", MIN_OUTPUT_CHARS):
        raise RenderBudgetExceeded(f"the chat template tried to build {size} characters")
    if time.monotonic() > getattr(_budget, "deadline", float("inf")):
        raise RenderBudgetExceeded(f"the chat template took more than {RENDER_SECONDS}s")


def _checked_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict):
        _check(len(value))
    elif isinstance(value, int) and value.bit_length() > 4096:
        raise RenderBudgetExceeded("the chat template built an absurdly large number")
    return value


def _check_arguments(args: tuple, kwargs: dict) -> None:
    """Any width, count or repeat argument larger than the output budget is refused before
    Python allocates it (``'a'.center(10**9)``, ``'{:>999999999}'.format(1)``)."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool):
            _check(abs(arg))
        elif isinstance(arg, str) and _WIDTH.search(arg):
            _check(int(_WIDTH.search(arg).group(1)))


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with every operator, call, attribute and item access checked against the
    render's deadline and output budget."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            seq, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, str | list | tuple) and isinstance(count, int):
                _check(len(seq) * max(count, 0))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and max(abs(left), 2).bit_length() * right > 4096:
                raise RenderBudgetExceeded("the chat template built an absurdly large number")
        elif operator == "%" and isinstance(left, str):
            _check_arguments((left,), {})
        _check()
        return _checked_size(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's signature
        _check_arguments(args, kwargs)
        _check()
        return _checked_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj, attribute):
        _check()
        return _checked_size(super().getattr(obj, attribute))

    def getitem(self, obj, argument):
        _check()
        return _checked_size(super().getitem(obj, argument))


def _budgeted_filter(fn):
    """A filter whose arguments (after the value, and the context jinja passes first to
    some) are checked first; jinja's pass_* marker kept."""
    marker = getattr(fn, "jinja_pass_arg", None)
    skip = 1 if marker is None else 2

    def wrapper(*args, **kwargs):
        _check_arguments(args[skip:], kwargs)
        _check()
        return _checked_size(fn(*args, **kwargs))

    if marker is not None:
        wrapper.jinja_pass_arg = marker
    return wrapper


@lru_cache(maxsize=32)
def compile_template(source: str) -> tuple[jinja2.Template, frozenset[str]]:
    """The template in a budgeted environment set up as transformers sets up its own (same
    filters, globals, extensions), and the variables it reads that a request may set."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    # Its environment, from an empty template: the source itself must never be compiled
    # there, where constant folding would evaluate it.
    reference = _compile_jinja_template("").environment
    # No constant folding: it would evaluate ``{{ 'a' * 10**9 }}`` while compiling.
    env = BudgetedEnvironment(trim_blocks=True, lstrip_blocks=True, optimized=False,
                              extensions=[type(e) for e in reference.extensions.values()])
    env.filters.update(reference.filters)
    env.filters = {name: _budgeted_filter(fn) for name, fn in env.filters.items()}
    env.globals.update(reference.globals)
    try:
        tree = env.parse(source)
    except TemplateError as exc:
        raise InvalidRequest(f"the chat template does not parse: {exc}",
                             param="chat_template") from None
    variables = frozenset(meta.find_undeclared_variables(tree)) - CONTEXT_NAMES - \
        _call_parameters() - frozenset(env.globals)
    return env.from_string(tree), variables


@lru_cache(maxsize=64)
def reads_variable(source: str, name: str) -> bool:
    """Whether the template reads ``name`` (one the server sets, such as ``tools``)."""
    env = compile_template(source)[0].environment
    return name in meta.find_undeclared_variables(env.parse(source))


def template_kwargs(source: str, given: dict[str, Any] | None,
                    trust_template: bool) -> tuple[str, dict[str, Any]]:
    """The template to render and the request kwargs that reach it. A name the server sets
    (the template call's parameters, its context) is a 400; ``chat_template`` is one unless
    the operator trusts request templates; a name the template never reads is dropped (it
    could change nothing), as vLLM does."""
    given = dict(given or {})
    requested = given.pop("chat_template", None)
    if requested is not None:
        if not trust_template:
            raise InvalidRequest("chat_template_kwargs.chat_template is not accepted: this "
                                 "server renders the model's own chat template (an operator "
                                 "may allow request templates with "
                                 "trust_request_chat_template)",
                                 param="chat_template_kwargs.chat_template")
        if not isinstance(requested, str):
            raise InvalidRequest("chat_template must be a string",
                                 param="chat_template_kwargs.chat_template")
        source = requested
    reserved = sorted(k for k in given if k in CONTEXT_NAMES or k in _call_parameters())
    if reserved:
        raise InvalidRequest(f"chat_template_kwargs may not set {reserved[0]!r}: the server "
                             "sets it", param=f"chat_template_kwargs.{reserved[0]}")
    _, variables = compile_template(source)
    return source, {k: v for k, v in given.items() if k in variables}


def render_chat(tokenizer: Any, messages: list[dict[str, Any]], tools: list | None,
                given: dict[str, Any] | None, trust_template: bool) -> str:
    """What ``tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
    add_generation_prompt=True, **kwargs)`` renders, within the budget."""
    source, kwargs = template_kwargs(tokenizer.get_chat_template(None, tools), given,
                                     trust_template)
    template, _ = compile_template(source)
    size = sum(len(str(m.get("content") or "")) for m in messages) + len(str(tools or ""))
    _budget.chars = max(MIN_OUTPUT_CHARS, OUTPUT_RATIO * size)
    _budget.deadline = time.monotonic() + RENDER_SECONDS
    context = {**tokenizer.special_tokens_map, **kwargs, "messages": messages,
               "tools": tools, "documents": None, "add_generation_prompt": True}
    parts, written = [], 0
    try:
        for chunk in template.generate(**context):
            written += len(chunk)
            _check(written)
            parts.append(chunk)
    except RenderBudgetExceeded as exc:
        raise InvalidRequest(f"chat template stopped: {exc}", param="messages") from None
    except Exception as exc:  # a template's own errors are the client's input problem
        raise InvalidRequest(f"chat template failed: {exc}", param="messages") from None
    finally:
        _budget.__dict__.clear()
    return require_unicode("".join(parts), "messages")
