"""The model's tokenizer as openvino-genai's ``Tokenizer``, converted once with
openvino-tokenizers and kept beside the model's IR. The pipeline itself is fed token ids and
needs none; its constrained decoding (xgrammar inside) reads the vocabulary from it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hfserve.backends.export_cache import is_complete, mark_complete
from hfserve.text.codec import byte_level_decoding

log = logging.getLogger(__name__)


def genai_tokenizer(tokenizer: Any, folder: Path) -> Any | None:
    """openvino-genai's tokenizer for ``tokenizer`` (converted into ``folder`` on first
    use), or None where it cannot be converted: the pipeline then runs without one, and
    structured output on this model is refused."""
    import openvino_genai as genai

    try:
        if not is_complete(folder):
            import openvino as ov
            import openvino_tokenizers

            encoder, decoder = openvino_tokenizers.convert_tokenizer(
                byte_level_decoding(tokenizer), with_detokenizer=True)
            folder.mkdir(parents=True, exist_ok=True)
            ov.save_model(encoder, str(folder / "openvino_tokenizer.xml"))
            ov.save_model(decoder, str(folder / "openvino_detokenizer.xml"))
            mark_complete(folder)
        return genai.Tokenizer(str(folder))
    except Exception as exc:  # an unconvertible tokenizer costs structured output only
        log.warning("no openvino-genai tokenizer for this model (%s: %s); structured output "
                    "is unavailable on it", type(exc).__name__, exc)
        return None
