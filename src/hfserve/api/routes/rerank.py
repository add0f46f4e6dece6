"""POST /v1/rerank and /rerank (Cohere/Jina form) and POST /v1/score (vLLM's pairs form): a
cross-encoder scores (query, document) pairs, batched with other requests."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.schemas.rerank import RerankRequest, RerankResponse, ScoreRequest, ScoreResponse
from hfserve.api.state import engine_of, note_model
from hfserve.errors import InvalidRequest
from hfserve.types import Task

router = APIRouter()


async def _scores(request: Request, body, pairs: list[list[str]]) -> tuple[list[float], int,
                                                                            str]:
    note_model(request, body.model)
    result = await engine_of(request).run(body.model, Task.RERANK, pairs,
                                          {"truncate": body.truncate},
                                          priority=body.priority, timeout=body.timeout)
    return [s.scores[0] for s in result.results], result.prompt_tokens, result.model


@router.post("/v1/rerank", response_model=RerankResponse,
             responses=error_responses(*MODEL_ERRORS))
@router.post("/rerank", response_model=RerankResponse, include_in_schema=False)
async def rerank(body: RerankRequest, request: Request) -> Response:
    texts = [d if isinstance(d, str) else d.text for d in body.documents]
    scores, tokens, model = await _scores(request, body, [[body.query, t] for t in texts])
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[:body.top_n]
    response = RerankResponse(
        id=f"rerank-{uuid.uuid4().hex}", model=model, usage=usage(tokens),
        results=[{"index": i, "relevance_score": scores[i],
                  "document": {"text": texts[i]} if body.return_documents else None}
                 for i in order])
    return Response(response.model_dump_json(), media_type="application/json")


@router.post("/v1/score", response_model=ScoreResponse, responses=error_responses(*MODEL_ERRORS))
async def score(body: ScoreRequest, request: Request) -> Response:
    first = [body.text_1] if isinstance(body.text_1, str) else body.text_1
    second = [body.text_2] if isinstance(body.text_2, str) else body.text_2
    if len(first) == 1:
        first = first * len(second)
    if len(first) != len(second):
        raise InvalidRequest(f"text_1 has {len(first)} texts and text_2 {len(second)}: give "
                             "one text_1, or as many as text_2", param="text_1")
    scores, tokens, model = await _scores(request, body,
                                          [list(p) for p in zip(first, second, strict=True)])
    response = ScoreResponse(id=f"score-{uuid.uuid4().hex}", created=int(time.time()),
                             model=model, usage=usage(tokens),
                             data=[{"index": i, "score": s} for i, s in enumerate(scores)])
    return Response(response.model_dump_json(), media_type="application/json")
