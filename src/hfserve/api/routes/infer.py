"""POST /v1/infer/{model}: the HuggingFace Inference API's form (``{"inputs", "parameters"}``)
for the model's task, answered with what transformers' ``pipeline`` returns for it. One
entry per task in ``TASKS``: how parameters become engine options, and how results become
the pipeline's JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses
from hfserve.api.schemas.infer import InferRequest
from hfserve.api.state import engine_of, note_model
from hfserve.errors import InvalidRequest
from hfserve.types import Task

router = APIRouter()


def ranked_labels(labels: list[str], values: list[float]) -> list[dict[str, Any]]:
    """``{"label", "score"}`` for every label, best first (transformers' pipeline and TEI
    both answer so)."""
    return sorted(({"label": label, "score": value}
                   for label, value in zip(labels, values, strict=True)),
                  key=lambda r: -r["score"])


def _labels(top_k: Any) -> Callable[[Any], Any]:
    """text-classification as the pipeline answers it: the ``top_k`` best labels (1 by
    default: one dict per text; ``null``: every label)."""
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise InvalidRequest("top_k must be a positive integer or null",
                             param="parameters.top_k")

    def render(scores: Any) -> Any:
        ranked = ranked_labels(scores.labels, scores.scores)
        return ranked[0] if top_k == 1 else ranked[:top_k]

    return render


@dataclass(frozen=True)
class TaskEntry:
    options: Callable[[dict[str, Any]], dict[str, Any]]
    render: Callable[[dict[str, Any]], Callable[[Any], Any]]
    single_as_list: bool       # a single text's result comes wrapped in a list


def _top_labels(top_k: Any) -> Callable[[Any], Any]:
    """image- and audio-classification as the pipeline answers them: a list of the
    ``top_k`` best labels (5 by default) for each image or audio file."""
    if not isinstance(top_k, int) or top_k < 1:
        raise InvalidRequest("top_k must be a positive integer", param="parameters.top_k")
    return lambda scores: ranked_labels(scores.labels, scores.scores)[:top_k]


TASKS: dict[Task, TaskEntry] = {
    Task.TEXT_CLASSIFICATION: TaskEntry(
        options=lambda p: {"truncate": bool(p.get("truncation", False))},
        render=lambda p: _labels(p.get("top_k", 1)), single_as_list=True),
    Task.TOKEN_CLASSIFICATION: TaskEntry(
        options=lambda p: {"aggregation_strategy": p.get("aggregation_strategy", "none"),
                           "ignore_labels": p.get("ignore_labels")},
        render=lambda p: lambda entities: entities, single_as_list=False),
    Task.ZERO_SHOT: TaskEntry(
        options=lambda p: {k: p.get(k) for k in ("candidate_labels", "hypothesis_template",
                                                   "multi_label")},
        render=lambda p: lambda answer: answer, single_as_list=False),
    Task.FILL_MASK: TaskEntry(
        options=lambda p: {"top_k": p.get("top_k", 5)},
        render=lambda p: lambda answer: answer, single_as_list=False),
    Task.IMAGE_CLASSIFICATION: TaskEntry(
        options=lambda p: {}, render=lambda p: _top_labels(p.get("top_k", 5)),
        single_as_list=False),
    Task.ZERO_SHOT_IMAGE: TaskEntry(
        options=lambda p: {k: p.get(k) for k in ("candidate_labels", "hypothesis_template")},
        render=lambda p: lambda scores: ranked_labels(scores.labels, scores.scores),
        single_as_list=False),
    Task.OBJECT_DETECTION: TaskEntry(
        options=lambda p: {"threshold": p.get("threshold")},
        render=lambda p: lambda objects: objects, single_as_list=False),
    Task.IMAGE_SEGMENTATION: TaskEntry(
        options=lambda p: {k: p.get(k) for k in ("subtask", "threshold", "mask_threshold",
                                                   "overlap_mask_area_threshold")},
        render=lambda p: lambda segments: segments, single_as_list=False),
    Task.AUDIO_CLASSIFICATION: TaskEntry(
        options=lambda p: {}, render=lambda p: _top_labels(p.get("top_k", 5)),
        single_as_list=False),
    Task.SPEECH_RECOGNITION: TaskEntry(
        options=lambda p: {k: p[k] for k in ("language", "task") if k in p},
        render=lambda p: lambda transcript: {"text": transcript.text}, single_as_list=False),
    Task.EMBEDDING: TaskEntry(
        options=lambda p: {"truncate": bool(p.get("truncate", False))},
        render=lambda p: lambda vector: vector.tolist(), single_as_list=False),
}


# Tasks that classify against labels the request gives (``candidate_labels``).
ZERO_SHOT_TASKS = (Task.ZERO_SHOT_IMAGE, Task.ZERO_SHOT)


@router.post("/v1/infer/{model:path}", responses={
    200: {"description": "What transformers' pipeline returns for the model's task",
          "content": {"application/json": {"schema": {}}}},
    **error_responses(*MODEL_ERRORS)})
async def infer(model: str, body: InferRequest, request: Request) -> JSONResponse:
    engine = engine_of(request)
    note_model(request, model)
    served = [Task(t) for t in engine.describe(model).get("tasks", [])]
    zero_shot = [t for t in ZERO_SHOT_TASKS if t in served]
    if body.task is not None:
        task: Task | None = next((t for t in served if t.value == body.task), None)
        if task is None or task not in TASKS:
            raise InvalidRequest(f"model {model!r} serves {', '.join(served) or 'nothing'}"
                                 f" by /v1/infer, not {body.task}", param="task",
                                 code="unsupported_task")
    elif "candidate_labels" in body.parameters:
        if not zero_shot:
            raise InvalidRequest(f"model {model!r} is neither an NLI nor a CLIP-style "
                                 "model; candidate_labels need one",
                                 param="parameters.candidate_labels")
        task = zero_shot[0]     # asked for given labels
    else:
        task = next((t for t in served if t in TASKS and t not in ZERO_SHOT_TASKS), None)
    if task is None:
        raise InvalidRequest(f"model {model!r} serves {', '.join(served) or 'nothing'}; "
                             "/v1/infer serves " + ", ".join(t.value for t in TASKS),
                             param="model", code="unsupported_task")
    entry = TASKS[task]
    render = entry.render(body.parameters)
    items = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
    result = await engine.run(model, task, items, entry.options(body.parameters),
                              priority=body.priority, timeout=body.timeout,
                              cache=use_cache(request))
    rendered = [render(r) for r in result.results]
    if isinstance(body.inputs, str):
        one = rendered[0]
        return JSONResponse([one] if entry.single_as_list and isinstance(one, dict) else one)
    return JSONResponse(rendered)
