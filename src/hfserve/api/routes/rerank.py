"""POST /v1/rerank (Cohere/Jina form; /rerank takes it too, beside TEI's form) and POST
/v1/score (vLLM's pairs form): a cross-encoder scores (query, document) pairs, batched with
other requests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.schemas.rerank import RerankRequest, RerankResponse, ScoreRequest, ScoreResponse
from hfserve.api.state import engine_of, note_model
from hfserve.errors import InvalidRequest
from hfserve.types import Task

router = APIRouter()


@dataclass
class Scored:
    values: list[float]
    prompt_tokens: int
    model: str


async def pair_scores(request: Request, model: str, pairs: list[list[str]], truncate: bool,
                      *, raw: bool = False, priority: str = "normal",
                      timeout: float | None = None) -> Scored:
    """A cross-encoder's score of each (query, document) pair: the sigmoid of its one logit
    (``raw``: the logit)."""
    note_model(request, model)
    result = await engine_of(request).run(model, Task.RERANK, pairs, {"truncate": truncate},
                                          priority=priority, timeout=timeout,
                                          cache=use_cache(request))
    return Scored([s.logits[0] if raw else s.scores[0] for s in result.results],
                  result.prompt_tokens, result.model)


async def rerank_response(body: RerankRequest, request: Request) -> Response:
    texts = [d if isinstance(d, str) else d.text for d in body.documents]
    scored = await pair_scores(request, body.model, [[body.query, t] for t in texts],
                               body.truncate, priority=body.priority, timeout=body.timeout)
    scores = scored.values
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[:body.top_n]
    response = RerankResponse(
        id=f"rerank-{uuid.uuid4().hex}", model=scored.model, usage=usage(scored.prompt_tokens),
        results=[{"index": i, "relevance_score": scores[i],
                  "document": {"text": texts[i]} if body.return_documents else None}
                 for i in order])
    return Response(response.model_dump_json(), media_type="application/json")


@router.post("/v1/rerank", response_model=RerankResponse,
             responses=error_responses(*MODEL_ERRORS))
async def rerank(body: RerankRequest, request: Request) -> Response:
    return await rerank_response(body, request)


@router.post("/v1/score", response_model=ScoreResponse, responses=error_responses(*MODEL_ERRORS))
async def score(body: ScoreRequest, request: Request) -> Response:
    first = [body.text_1] if isinstance(body.text_1, str) else body.text_1
    second = [body.text_2] if isinstance(body.text_2, str) else body.text_2
    if len(first) == 1:
        first = first * len(second)
    if len(first) != len(second):
        raise InvalidRequest(f"text_1 has {len(first)} texts and text_2 {len(second)}: give "
                             "one text_1, or as many as text_2", param="text_1")
    scored = await pair_scores(request, body.model,
                               [list(p) for p in zip(first, second, strict=True)],
                               body.truncate, priority=body.priority, timeout=body.timeout)
    response = ScoreResponse(id=f"score-{uuid.uuid4().hex}", created=int(time.time()),
                             model=scored.model, usage=usage(scored.prompt_tokens),
                             data=[{"index": i, "score": s} for i, s in enumerate(scored.values)])
    return Response(response.model_dump_json(), media_type="application/json")
