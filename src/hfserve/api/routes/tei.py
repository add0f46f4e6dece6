"""The routes of Text Embeddings Inference (TEI): /embed, /embed_all, /predict, /rerank,
/similarity, /tokenize and /decode (its /info is in routes/info.py, beside TGI's),
with TEI's request and response bodies and its error body (``{"error", "error_type"}``,
413 / 422 / 424 / 429). TEI serves one model per process; here a ``model`` field or an
``X-Model`` header chooses, and may be left out when exactly one served model does the task.
/rerank also takes the Cohere/Jina form (``documents``), which vLLM serves there."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hfserve.api.cache_control import use_cache
from hfserve.api.family_errors import ErrorTable, family_error, route_class
from hfserve.api.routes.infer import ranked_labels
from hfserve.api.routes.rerank import pair_scores, rerank_response
from hfserve.api.schemas.rerank import RerankRequest
from hfserve.api.schemas.tei import (
    DecodeRequest,
    EmbedAllRequest,
    EmbedRequest,
    Prediction,
    PredictRequest,
    Rank,
    SimilarityRequest,
    SimpleToken,
    TEIError,
    TEIRerankRequest,
    TokenizeRequest,
)
from hfserve.api.state import choose_model, engine_of
from hfserve.errors import (
    AuthenticationError,
    ContextLengthExceeded,
    HFServeError,
    InvalidRequest,
    ModelError,
    ModelNotFound,
    NotFound,
    Overloaded,
    PermissionDenied,
    UnsupportedTask,
)
from hfserve.types import Task

# hfserve's errors as TEI answers them: status and error_type.
_TEI_ERRORS: ErrorTable = [
    (AuthenticationError, 401, "Unauthorized"),
    (PermissionDenied, 403, "Forbidden"),
    (NotFound, 404, "NotFound"),
    (ContextLengthExceeded, 413, "Validation"),
    (UnsupportedTask, 424, "Backend"),
    (ModelError, 424, "Backend"),
    (Overloaded, 429, "Overloaded"),
    (ModelNotFound, 404, "Validation"),
    (InvalidRequest, 422, "Validation"),
]


def tei_error(exc: HFServeError) -> JSONResponse:
    if exc.code == "too_many_inputs":
        exc = ContextLengthExceeded(exc.message)       # TEI: a batch size error is a 413
    return family_error(_TEI_ERRORS, exc, "Unhealthy" if exc.status >= 500 else "Validation")


router = APIRouter(route_class=route_class(tei_error), tags=["Text Embeddings Inference"])
RESPONSES = {status: {"model": TEIError, "description": text} for status, text in (
    (404, "No such model"), (413, "Batch size or input length error"),
    (422, "Validation or tokenization error"), (424, "The model cannot do this, or failed"),
    (429, "Model is overloaded"), (503, "Unavailable"))}


@router.post("/embed", response_model=list[list[float]], responses=RESPONSES)
async def embed(body: EmbedRequest, request: Request) -> JSONResponse:
    model = choose_model(request, body.model, Task.EMBEDDING)
    items = _inputs(body.inputs)
    normalize, truncate = body.settings()
    result = await engine_of(request).run(model, Task.EMBEDDING, items, {"truncate": truncate},
                                          cache=use_cache(request))
    vectors = np.stack(result.results)
    if normalize:
        vectors = _unit(vectors)
    return JSONResponse(vectors.tolist())


@router.post("/embed_all", response_model=list[list[list[float]]], responses=RESPONSES)
async def embed_all(body: EmbedAllRequest, request: Request) -> JSONResponse:
    """Every token's hidden state, unpooled and not normalized."""
    model = choose_model(request, body.model, Task.EMBEDDING)
    items = _inputs(body.inputs)
    result = await engine_of(request).run(model, Task.EMBEDDING, items,
                                          {"truncate": bool(body.truncate), "pooling": "none"},
                                          cache=use_cache(request))
    return JSONResponse([rows.tolist() for rows in result.results])


@router.post("/tokenize", response_model=list[list[SimpleToken]], responses=RESPONSES)
async def tokenize(body: TokenizeRequest, request: Request) -> JSONResponse:
    model = choose_model(request, body.model, None)
    texts = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
    spans = await engine_of(request).tokenize(model, texts, body.add_special_tokens)
    return JSONResponse([[vars(t) for t in row] for row in spans])


@router.post("/decode", response_model=list[str], responses=RESPONSES)
async def decode(body: DecodeRequest, request: Request) -> JSONResponse:
    model = choose_model(request, body.model, None)
    sequences = [body.ids] if isinstance(body.ids[0], int) else list(body.ids)
    return JSONResponse(await engine_of(request).decode(model, sequences,
                                                        body.skip_special_tokens))


@router.post("/predict", response_model=list[Prediction] | list[list[Prediction]],
             responses=RESPONSES)
async def predict(body: PredictRequest, request: Request) -> JSONResponse:
    model = choose_model(request, body.model, Task.TEXT_CLASSIFICATION)
    single = isinstance(body.inputs, str) or isinstance(body.inputs[0], str)
    batch = [body.inputs] if single else body.inputs
    items = [i if isinstance(i, str) else i[0] if len(i) == 1 else list(i) for i in batch]
    result = await engine_of(request).run(model, Task.TEXT_CLASSIFICATION, items,
                                          {"truncate": bool(body.truncate)},
                                          cache=use_cache(request))
    rows = [ranked_labels(s.labels, s.logits if body.raw_scores else s.scores)
            for s in result.results]
    return JSONResponse(rows[0] if single else rows)


@router.post("/rerank", response_model=list[Rank], responses=RESPONSES)
async def rerank(body: TEIRerankRequest | RerankRequest, request: Request) -> Response:
    if isinstance(body, RerankRequest):          # the Cohere/Jina form
        return await rerank_response(body, request)
    model = choose_model(request, body.model, Task.RERANK)
    scores = await pair_scores(request, model, [[body.query, t] for t in body.texts],
                               bool(body.truncate), raw=body.raw_scores)
    ranks = sorted(({"index": i, "score": s, **({"text": body.texts[i]}
                                               if body.return_text else {})}
                    for i, s in enumerate(scores.values)), key=lambda r: -r["score"])
    return JSONResponse(ranks)


@router.post("/similarity", response_model=list[float], responses=RESPONSES)
async def similarity(body: SimilarityRequest, request: Request) -> JSONResponse:
    model = choose_model(request, body.model, Task.EMBEDDING)
    texts = [body.inputs.source_sentence, *body.inputs.sentences]
    truncate = bool(body.parameters and body.parameters.truncate)
    result = await engine_of(request).run(model, Task.EMBEDDING, texts, {"truncate": truncate},
                                          cache=use_cache(request))
    vectors = _unit(np.stack(result.results))
    return JSONResponse((vectors[1:] @ vectors[0]).tolist())


def _inputs(inputs: Any) -> list[Any]:
    """TEI's ``inputs``: a text, token ids, or a list of either, as a list of items."""
    single = isinstance(inputs, str) or (inputs and isinstance(inputs[0], int))
    return [inputs] if single else list(inputs)


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
