"""Wire types of Text Generation Inference's (TGI) /generate and /generate_stream, plus an
optional ``model`` (TGI serves one model per process, hfserve many)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from hfserve.api.schemas.common import Request, Text
from hfserve.api.schemas.sampling import INT32, INT64


class GenerateParameters(Request):
    max_new_tokens: int | None = Field(None, ge=0, le=INT32)
    do_sample: bool = False
    temperature: float | None = Field(None, gt=0, le=100)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1, le=INT32)
    seed: int | None = Field(None, ge=0, le=INT64)
    stop: Annotated[list[Text], Field(max_length=16)] = Field(default_factory=list)
    repetition_penalty: float | None = Field(None, gt=0, description="Only 1.0 (none)")
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    return_full_text: bool = False
    details: bool = False
    decoder_input_details: bool = False
    truncate: None = Field(None, description="Not supported (only null)")
    # TGI's other parameters, which huggingface_hub's InferenceClient sends: accepted at
    # their "off" values only.
    watermark: Literal[False] = False
    best_of: Literal[1] | None = None
    top_n_tokens: None = None
    typical_p: None = None
    grammar: None = None
    adapter_id: None = None


class GenerateRequest(Request):
    inputs: Text
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    stream: bool = Field(False, description="As TGI's / route: stream the tokens (SSE)")
    model: str | None = Field(None, description="The model; may be left out when one served "
                              "model generates text (or given as the X-Model header)")
