"""Text <-> tokens for generative skills, through the model's own HF tokenizer and chat
template (shared by every backend, so prompts tokenize the same everywhere)."""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hfserve.backends.export_cache import cached_or_built, export_dir
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.errors import ContextLengthExceeded, InvalidRequest
from hfserve.text.chat_template import reads_variable, render_chat
from hfserve.tool_calls.choice import parser_for_template
from hfserve.tool_calls.prompt import template_arguments, with_tool_preamble
from hfserve.types import Constraint, ModelSpec

log = logging.getLogger(__name__)


def flatten_content(content: Any) -> str:
    """OpenAI message content (a string or a list of parts) -> text for a text-only model."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequest(f"this model accepts only text content, got {part.get('type')!r}",
                                 param="messages")
        parts.append(part.get("text", ""))
    return "".join(parts)


def byte_level_decoding(tokenizer: Any) -> Any:
    """``tokenizer`` as a plain fast tokenizer whose decoder says what its vocabulary is,
    for libraries that read token bytes from the decoder's kind (llguidance,
    openvino-tokenizers). transformers rebuilds a GGUF file's byte-level BPE (SmolLM2's)
    with a sentencepiece-style decoder chain: read by that, "Ċ" is "Ċ", not a newline.
    Where the pre-tokenizer is byte-level, so is the vocabulary, and the byte-level
    decoder is the exact one; other tokenizers come back as they are."""
    import copy

    from tokenizers import decoders, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.pre_tokenizer, pre_tokenizers.ByteLevel) \
            or isinstance(backend.decoder, decoders.ByteLevel):
        return tokenizer
    backend = copy.deepcopy(backend)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=tokenizer.eos_token)


def _rust(tokenizer: Any) -> Any:
    """The ``tokenizers`` object behind a fast tokenizer, or None."""
    return getattr(tokenizer, "backend_tokenizer", None) \
        if getattr(tokenizer, "is_fast", False) else None


_PLAIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plain_rust(tokenizer: Any) -> Any:
    """The Rust tokenizer behind a fast tokenizer, with truncation and padding off (a copy
    where its ``tokenizer.json`` sets either), or None for a slow tokenizer.

    ``tokenizer(text)`` turns the backend's truncation and padding off for the call, which
    mutates the shared Rust object: two threads doing it at once fail with "Already
    borrowed". ``encode`` on an object nobody mutates is safe from any thread."""
    backend = _rust(tokenizer)
    if backend is None or (backend.truncation is None and backend.padding is None):
        return backend
    try:
        return _PLAIN[tokenizer]
    except (KeyError, TypeError):
        pass
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    try:
        _PLAIN[tokenizer] = plain
    except TypeError:       # not weakly referable: a copy per call, still correct
        pass
    return plain


def token_ids(tokenizer: Any, text: str, *, special: bool = True) -> list[int]:
    """``tokenizer(text)["input_ids"]``: through the Rust ``tokenizers`` object of a fast
    tokenizer, which gives the same ids without transformers' per-call Python (a MiniLM
    sentence: 51 -> 36 us on an idle core; the tokenizer call was a fifth of the event
    loop's work per one-sentence embedding request) and without its per-call mutation of
    the shared backend (see ``_plain_rust``)."""
    backend = _plain_rust(tokenizer)
    if backend is None:
        return tokenizer(text, add_special_tokens=special)["input_ids"]
    return backend.encode(text, add_special_tokens=special).ids


def fit_length(ids: list[int], max_length: int, truncate: bool) -> list[int]:
    """``ids`` within the model's ``max_length``: cut (keeping the closing special token)
    where ``truncate`` allows, a clear 400 otherwise."""
    if len(ids) <= max_length:
        return ids
    if not truncate:
        raise ContextLengthExceeded(
            f"input has {len(ids)} tokens, more than this model's maximum of {max_length}; "
            "shorten it or pass truncate=true", param="input")
    return ids[: max_length - 1] + ids[-1:]


def token_text(tokenizer: Any, ids: list[int]) -> str:
    """``tokenizer.decode(ids, skip_special_tokens=True)`` for a list of ids, without the
    public wrapper's item-by-item conversion of the list (most of its cost: a third of a
    generation step's Python at 256 streams in ``bench/loop_overhead.py``). The tokenizer's
    own ``_decode`` still does the work, with this transformers version's clean-up rules;
    a class that overrides ``decode`` keeps it."""
    from transformers import PreTrainedTokenizerBase

    if type(tokenizer).decode is not PreTrainedTokenizerBase.decode:
        return tokenizer.decode(ids, skip_special_tokens=True)
    return tokenizer._decode(ids, skip_special_tokens=True)


# Text on which transformers' optional clean-up (" ." -> ".", " 's" -> "'s", ...) changes
# something: if decoding its ids gives the same text with and without the tokenizer's own
# wrapper, the wrapper adds nothing.
_CLEAN_UP_PROBE = "Hello , world . Is n't it ? Yes ! I 'm sure ; he 's here , we 're ' in ' , 've"


def _rust_decodes_alike(tokenizer: Any) -> Any:
    """The Rust tokenizer behind ``tokenizer`` when its own ``decode`` gives what
    transformers' wrapper gives (no overridden ``decode``, no clean-up in effect: a probe
    text decodes the same both ways), else None."""
    backend = _rust(tokenizer)
    if backend is None:
        return None
    try:
        ids = token_ids(tokenizer, _CLEAN_UP_PROBE, special=False)
        same = backend.decode(ids, skip_special_tokens=True) == token_text(tokenizer, ids)
    except Exception:  # a tokenizer that cannot take the probe keeps the slow path
        same = False
    return backend if same else None


def text_decoder(tokenizer: Any, backend: Any = False) -> Callable[[list[int]], str]:
    """What ``token_text`` computes, as cheaply as this tokenizer allows: the Rust
    tokenizer's own ``decode`` when transformers' wrapper around it changes nothing for this
    tokenizer (no overridden ``decode``, no clean-up in effect: a probe text decodes the same
    both ways), else ``token_text``. Incremental detokenization calls it twice per token per
    sequence, and the wrapper's Python was more than half of each call (2.5 -> 1.0 us)."""
    if backend is False:             # not probed yet
        backend = _rust_decodes_alike(tokenizer)
    if backend is not None:
        decode = backend.decode
        return lambda ids: decode(ids, skip_special_tokens=True)
    return lambda ids: token_text(tokenizer, ids)


class RustTextStream:
    """``tokenizers``' own incremental decoder (``DecodeStream``: the prefix and read
    offsets that ``Sequence`` otherwise keeps, in Rust) bound to its tokenizer: one call per
    token instead of two decodes and their Python (``Sequence.append`` 3.2 -> 2.4 us a token
    with SmolLM2's tokenizer)."""

    def __init__(self, backend: Any) -> None:
        from tokenizers.decoders import DecodeStream

        self._stream = DecodeStream(skip_special_tokens=True)
        self._backend = backend

    def step(self, token_id: int) -> str | None:
        return self._stream.step(self._backend, token_id)


def load_hf_tokenizer(spec: ModelSpec, cache_dir: Path | str | None = None) -> Any:
    """The model's tokenizer. A GGUF file's is rebuilt from the file's metadata, which takes
    seconds (4.9 s for SmolLM2's 49,152-token vocabulary on a 2-core machine, in the server
    and again in a model process); with a ``cache_dir`` it is saved there once as a normal
    tokenizer folder and loaded from it afterwards (0.3 s), keyed by the file's identity."""
    from transformers import AutoTokenizer

    if spec.gguf_file is None:
        return AutoTokenizer.from_pretrained(str(spec.path), **tokenizer_kwargs(spec))
    if cache_dir is None:
        return _gguf_tokenizer(spec)
    import transformers

    def same(tokenizer: Any, staging: Path) -> bool:
        """Kept only if it loads back as the same tokenizer on a probe text."""
        reloaded = _read_generic(staging)
        ids = token_ids(tokenizer, _CACHE_PROBE)
        alike = token_ids(reloaded, _CACHE_PROBE) == ids and token_text(
            reloaded, ids) == token_text(tokenizer, ids) and getattr(
            reloaded, "chat_template", None) == getattr(tokenizer, "chat_template", None)
        if not alike:
            log.warning("the tokenizer of %s does not load back the same; it is rebuilt "
                        "from the file at every load", spec.gguf_file)
        return alike

    # Keyed by the converter's version too: another transformers may convert differently.
    return cached_or_built(
        export_dir(Path(cache_dir), spec, "tokenizer", transformers=transformers.__version__,
                   layout=2),
        read=_read_generic, build=lambda: _gguf_tokenizer(spec),
        write=lambda tokenizer, staging: _write_generic(tokenizer, staging,
                                                        spec.config.get("vocab_size")),
        check=same)


def _gguf_tokenizer(spec: ModelSpec) -> Any:
    """A GGUF file's tokenizer as the generic fast tokenizer over the file's own vocabulary.
    transformers converts it to the class it names for the file (CodeLlamaTokenizer for
    SmolLM2), which rebuilds its own pipeline from the vocabulary and cuts newlines
    differently, and adds tokens the file does not have (CodeLlama's infill tokens, past the
    model's embeddings); written back without those, with the file's own special tokens,
    and loaded as the generic class, it takes ``tokenizer.json`` as converted."""
    import tempfile

    from transformers import AutoTokenizer

    converted = AutoTokenizer.from_pretrained(str(spec.path), gguf_file=spec.gguf_file,
                                              **tokenizer_kwargs(spec))
    # The file's own beginning and end tokens (the conversion took <|im_start|> for both).
    for role in ("bos", "eos"):
        token_id = spec.config.get(f"{role}_token_id")
        if isinstance(token_id, int) and 0 <= token_id < len(converted):
            setattr(converted, f"{role}_token", converted.convert_ids_to_tokens(token_id))
    with tempfile.TemporaryDirectory() as folder:
        _write_generic(converted, Path(folder), spec.config.get("vocab_size"))
        return _read_generic(Path(folder))


def _read_generic(folder: Path) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder), trust_remote_code=False)


def _write_generic(tokenizer: Any, folder: Path, vocab_size: int | None) -> None:
    """Save ``tokenizer`` as a folder ``AutoTokenizer`` loads, in any client (lm-eval's HF
    backend, a script), as the generic fast tokenizer; without added tokens at or past
    ``vocab_size``; decoding text as it was, without clean-up of spaces."""
    tokenizer.save_pretrained(str(folder))
    files = {name: Path(folder) / name for name in ("tokenizer.json", "tokenizer_config.json",
                                                    "special_tokens_map.json")}
    data = {name: json.loads(f.read_text()) for name, f in files.items() if f.exists()}
    dropped: set[str] = set()
    if vocab_size:
        added = data["tokenizer.json"].get("added_tokens", [])
        dropped = {t["content"] for t in added if t["id"] >= vocab_size}
        data["tokenizer.json"]["added_tokens"] = [t for t in added if t["id"] < vocab_size]
        decoder = data["tokenizer_config.json"].get("added_tokens_decoder", {})
        for key in [k for k in decoder if int(k) >= vocab_size]:
            del decoder[key]
    config = data["tokenizer_config.json"]
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["clean_up_tokenization_spaces"] = False
    # The dropped tokens also come back on loading wherever a setting names one
    # (CodeLlama's ``fill_token``, ``model_specific_special_tokens``...).
    for table in (config, config.get("model_specific_special_tokens") or {},
                  data.get("special_tokens_map.json", {})):
        for key, value in list(table.items()):
            if isinstance(value, list):
                table[key] = [t for t in value
                              if (t if isinstance(t, str) else t.get("content")) not in dropped]
            elif isinstance(value, str) and value in dropped:
                del table[key]
    for name, content in data.items():
        files[name].write_text(json.dumps(content, indent=2, ensure_ascii=False))


# Newlines, spaces, punctuation, accents, CJK, an emoji and a special token: what tokenizers
# of different kinds treat differently.
_CACHE_PROBE = "Hi!\n\n  Two  spaces , a tab\there. Ünïcödé 漢字 🤗 </s> <|im_end|> end\n"


class HFTextCodec:
    """Mixin: needs ``self.tokenizer``; provides the TextGenerator text methods. Alone, it
    is a skill's text side (``TextGenerator.text_codec``)."""

    tokenizer: Any

    @classmethod
    def text_codec(cls) -> HFTextCodec:
        return HFTextCodec()

    def load_tokenizer(self, spec: ModelSpec, eos_from_model: Any = None,
                       cache_dir: Path | str | None = None) -> frozenset[int]:
        """Load the tokenizer; return every token id that ends a sequence."""
        return self.use_tokenizer(load_hf_tokenizer(spec, cache_dir), spec, eos_from_model)

    def use_tokenizer(self, tokenizer: Any, spec: ModelSpec,
                      eos_from_model: Any = None) -> frozenset[int]:
        """Serve text through ``tokenizer``; return every token id that ends a sequence."""
        self.tokenizer = tokenizer
        self._architecture = spec.architecture
        self._token_text: dict[int, str] = {}
        backend = _rust_decodes_alike(self.tokenizer)
        self._decode = text_decoder(self.tokenizer, backend)
        self._stream_backend = backend
        eos = eos_from_model if isinstance(eos_from_model, list) else [eos_from_model]
        return frozenset(int(e) for e in [*eos, self.tokenizer.eos_token_id] if e is not None)

    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        rendered = [{**m, "content": flatten_content(m.get("content"))} for m in messages]
        return token_ids(self.tokenizer, self.render_messages(rendered, options),
                         special=False)

    def encode_chat_inputs(self, messages: list[dict[str, Any]], options: dict[str, Any]
                           ) -> tuple[list[int], dict[str, Any] | None]:
        """``encode_chat`` and no media inputs: a text model's messages are text. The codec
        a model process leaves in the server is this object alone, so it answers too."""
        return self.encode_chat(messages, options), None

    def render_messages(self, messages: list[dict[str, Any]], options: dict[str, Any],
                        shape: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
                        = lambda messages: messages) -> str:
        """The prompt text of ``messages`` (their contents as the template takes them)
        through the model's chat template, with the request's tools; ``shape``: what the
        messages become last, once tool calls and results are in them."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidRequest("this model has no chat template; use /v1/completions",
                                 param="messages")
        tools = options.get("tools") or None
        if self._renders_tools(tools):
            messages = template_arguments(messages)
        else:
            messages, tools = with_tool_preamble(messages, tools), None
        return render_chat(self.tokenizer, shape(messages), tools,
                           options.get("chat_template_kwargs"),
                           bool(options.get("trust_request_chat_template")))

    def encode_text(self, prompt: str) -> list[int]:
        return token_ids(self.tokenizer, prompt)

    def decode_tokens(self, token_ids: list[int]) -> str:
        return self._decode(token_ids)

    def text_stream(self) -> RustTextStream | None:
        backend = getattr(self, "_stream_backend", None)
        return None if backend is None else RustTextStream(backend)

    def check_token_ids(self, token_ids: list[int], param: str = "prompt") -> None:
        size = len(self.tokenizer)
        bad = next((t for t in token_ids if not 0 <= t < size), None)
        if bad is not None:
            raise InvalidRequest(f"token id {bad} is outside this model's vocabulary "
                                 f"(0..{size - 1})", param=param)

    def check_constraint(self, constraint: Constraint | None) -> None:
        from hfserve.text import grammar

        grammar.check(constraint)

    def _renders_tools(self, tools: list | None = None) -> bool:
        """Whether the model's template (the one for ``tools``) renders tools itself."""
        try:
            source = self.tokenizer.get_chat_template(None, tools or [{}])
        except ValueError:
            return False
        return reads_variable(source, "tools")

    @property
    def tool_parser(self) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            return "json"
        return parser_for_template(self.tokenizer.get_chat_template(None, [{}]),
                                   getattr(self, "_architecture", ""), self._renders_tools())

    def token_text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self._token_text[token_id] = self.tokenizer.decode([token_id])
        return text
