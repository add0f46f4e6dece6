"""Every served model x task as an MCP tool. The table is computed from the engine's models
whenever it is asked for, so a model registered, loaded, unloaded or forgotten through the
admin API is in (or out of) the next ``tools/list`` without a notification to keep in step.
A call validates its arguments, then goes through the same engine entry points as the HTTP
routes (``EngineClient.run`` for encoder work, ``stream`` for generation): batching,
priorities, limits and the response cache apply alike."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hfserve.mcp import arguments as a
from hfserve.runtime.client import EngineClient
from hfserve.runtime.events import GenerationInput, collect
from hfserve.types import SamplingParams, Task

Call = Callable[[EngineClient, str, Any], Awaitable[dict[str, Any]]]
# States whose model can answer (an unloaded one loads on its first call).
SERVING = frozenset({"ready", "loading", "unloaded", "draining"})
NAME_MAX = 128


@dataclass(frozen=True)
class ToolKind:
    verb: str
    arguments: type[BaseModel]
    call: Call
    summary: str               # "{model}" is the model's served name


@dataclass(frozen=True)
class Tool:
    name: str
    model: str
    kind: ToolKind
    description: str


async def _run(engine: EngineClient, model: str, task: Task, args: a.TextsArguments,
               options: dict[str, Any], render: Callable[[Any], Any]) -> dict[str, Any]:
    result = await engine.run(model, task, args.items(), options, priority=args.priority)
    return {"model": result.model, "results": [render(r) for r in result.results],
            "prompt_tokens": result.prompt_tokens}


async def embed(engine: EngineClient, model: str, args: a.EmbedArguments) -> dict[str, Any]:
    # The options /v1/embeddings passes: the same request gives the same vectors.
    return await _run(engine, model, Task.EMBEDDING, args,
                      {"truncate": args.truncate, "dimensions": args.dimensions},
                      lambda vector: vector.tolist())


EMBED = ToolKind("embed", a.EmbedArguments, embed,
                 "Sentence embeddings of texts with {model}.")


async def classify(engine: EngineClient, model: str, args: a.TextsArguments) -> dict[str, Any]:
    return await _run(engine, model, Task.TEXT_CLASSIFICATION, args,
                      {"truncate": args.truncate},
                      lambda s: {"label": s.labels[s.best],
                                 "scores": dict(zip(s.labels, s.scores, strict=True))})


CLASSIFY = ToolKind("classify", a.TextsArguments, classify,
                    "Classify texts with {model}: the best label and every label's score.")


async def zero_shot(engine: EngineClient, model: str,
                    args: a.ZeroShotArguments) -> dict[str, Any]:
    return await _run(engine, model, Task.ZERO_SHOT, args,
                      {"candidate_labels": args.candidate_labels,
                       "hypothesis_template": args.hypothesis_template,
                       "multi_label": args.multi_label}, lambda answer: answer)


ZERO_SHOT = ToolKind("zero_shot", a.ZeroShotArguments, zero_shot,
                     "Choose among labels you give for each text, by natural language "
                     "inference with {model}.")


async def tag(engine: EngineClient, model: str, args: a.TagArguments) -> dict[str, Any]:
    return await _run(engine, model, Task.TOKEN_CLASSIFICATION, args,
                      {"aggregation_strategy": args.aggregation_strategy,
                       "ignore_labels": None}, lambda entities: entities)


TAG = ToolKind("tag", a.TagArguments, tag, "Named entities (or other token labels) in "
               "texts, with character offsets, by {model}.")


async def fill_mask(engine: EngineClient, model: str,
                    args: a.FillMaskArguments) -> dict[str, Any]:
    return await _run(engine, model, Task.FILL_MASK, args, {"top_k": args.top_k},
                      lambda answer: answer)


FILL_MASK = ToolKind("fill_mask", a.FillMaskArguments, fill_mask,
                     "The likeliest tokens for each mask token in texts, by {model}.")


async def rerank(engine: EngineClient, model: str, args: a.RerankArguments) -> dict[str, Any]:
    result = await engine.run(model, Task.RERANK, [[args.query, d] for d in args.documents],
                              {"truncate": False}, priority=args.priority)
    scores = [s.scores[0] for s in result.results]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:args.top_n]
    return {"model": result.model, "prompt_tokens": result.prompt_tokens,
            "results": [{"index": i, "relevance_score": scores[i],
                         "document": args.documents[i]} for i in order]}


RERANK = ToolKind("rerank", a.RerankArguments, rerank,
                  "Rank documents by relevance to a query with the cross-encoder {model}, "
                  "best first.")


def _sampling(args: a.SamplingArguments) -> SamplingParams:
    return SamplingParams(temperature=1.0 if args.temperature is None else args.temperature,
                          top_p=1.0 if args.top_p is None else args.top_p, seed=args.seed,
                          stop=tuple(args.stop or ()))


async def _generate(engine: EngineClient, model: str, request: GenerationInput
                    ) -> dict[str, Any]:
    handle = await engine.stream(model, request)
    got = await collect(handle, 1)       # the handle ends itself, finished or not
    choice = got.choices[0]
    return {"model": handle.model, "text": choice.text,
            "finish_reason": choice.finish_reason or "stop",
            "prompt_tokens": got.finished.prompt_tokens,
            "completion_tokens": got.finished.completion_tokens}


async def chat(engine: EngineClient, model: str, args: a.ChatArguments) -> dict[str, Any]:
    return await _generate(engine, model, GenerationInput(
        messages=[m.model_dump() for m in args.messages], params=_sampling(args),
        max_tokens=args.max_tokens, priority=args.priority))


CHAT = ToolKind("chat", a.ChatArguments, chat,
                "Chat with {model}: the reply to a conversation, through its chat template.")


async def complete(engine: EngineClient, model: str,
                   args: a.CompleteArguments) -> dict[str, Any]:
    return await _generate(engine, model, GenerationInput(
        prompt=args.prompt, params=_sampling(args), max_tokens=args.max_tokens,
        priority=args.priority))


COMPLETE = ToolKind("complete", a.CompleteArguments, complete,
                    "Continue a text with {model} (raw prompt, no chat template).")


# What each task offers; a model gets the tools of every task it serves.
KINDS: dict[Task, tuple[ToolKind, ...]] = {
    Task.EMBEDDING: (EMBED,), Task.TEXT_GENERATION: (CHAT, COMPLETE),
    Task.IMAGE_TEXT_TO_TEXT: (CHAT,), Task.TEXT2TEXT: (COMPLETE,),
    Task.TEXT_CLASSIFICATION: (CLASSIFY,), Task.ZERO_SHOT: (ZERO_SHOT,),
    Task.TOKEN_CLASSIFICATION: (TAG,), Task.FILL_MASK: (FILL_MASK,), Task.RERANK: (RERANK,),
}


def tool_name(verb: str, model: str) -> str:
    """MCP tool names keep to letters, digits, ``_``, ``-`` and ``.``, 128 at most."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{verb}_{model}")[:NAME_MAX]


def tasks_of(info: dict[str, Any]) -> list[str]:
    """What a model serves: a loaded one, the tasks of its skill; one not loaded (yet, or
    any more), its default task. Its config lists more (a causal LM's also names embedding
    and classification) that its skill may not do; the tools of those follow the load."""
    if info.get("state") not in SERVING or not info.get("tasks"):
        return []
    return list(info["tasks"]) if info["state"] == "ready" else [info["task"]]


def served_models(engine: EngineClient) -> list[dict[str, Any]]:
    """The models that can answer now (or load to), each with ``tasks`` as ``tasks_of``."""
    return [{**m, "tasks": tasks} for m in engine.models() if (tasks := tasks_of(m))]


def tool_table(engine: EngineClient) -> dict[str, Tool]:
    """Every tool the engine's models offer now, by name."""
    table: dict[str, Tool] = {}
    for info in served_models(engine):
        model = info["id"]
        for task in info["tasks"]:
            for kind in KINDS.get(task, ()):     # a StrEnum: its values are its keys
                name = tool_name(kind.verb, model)
                table.setdefault(name, Tool(name, model, kind, kind.summary.format(model=model)))
    return table
