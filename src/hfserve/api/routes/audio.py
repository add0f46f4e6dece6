"""POST /v1/audio/transcriptions and /v1/audio/translations, as OpenAI's: a multipart form
with the audio ``file`` and ``model``, answered in the ``response_format`` asked for.
Translations are transcriptions into English (Whisper's translate task); they take no
``language``, as OpenAI's do not."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.audio import ResponseFormat, Transcription, VerboseTranscription
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses
from hfserve.api.state import engine_of, note_model
from hfserve.api.transcripts import render
from hfserve.types import Task

router = APIRouter()

RESPONSES = {200: {"description": "The transcript in the response_format asked for",
                   "model": Transcription | VerboseTranscription,
                   "content": {"text/plain": {}, "text/vtt": {}}},
             **error_responses(*MODEL_ERRORS)}

AudioFile = Annotated[UploadFile, File(description="The audio: wav, flac, mp3, ogg, webm...")]
Model = Annotated[str, Form()]
Prompt = Annotated[str | None, Form(description="Text the model continues from (Whisper)")]
Format = Annotated[ResponseFormat, Form()]
Temperature = Annotated[float, Form(ge=0, le=1, description="0: greedy (the pipeline's "
                                    "decoding); above: sampled at this temperature")]
Granularities = Annotated[list[str] | None, Form(
    alias="timestamp_granularities[]", description="segment and/or word (verbose_json)")]


async def _transcribe(request: Request, file: UploadFile, model: str, task: str,
                      language: str | None, prompt: str | None, response_format: str,
                      temperature: float, granularities: list[str] | None) -> Response:
    note_model(request, model)
    chosen = tuple(granularities or ()) if response_format == "verbose_json" else ()
    if response_format in ("srt", "vtt", "verbose_json") and not chosen:
        chosen = ("segment",)
    options = {"task": task, "language": language, "prompt": prompt,
               "temperature": temperature, "timestamp_granularities": chosen}
    result = await engine_of(request).run(model, Task.SPEECH_RECOGNITION, [await file.read()],
                                          options, cache=use_cache(request) and not temperature)
    return render(result.results[0], response_format, chosen, temperature)


@router.post("/v1/audio/transcriptions", responses=RESPONSES)
async def transcriptions(request: Request, file: AudioFile, model: Model,
                         language: Annotated[str | None, Form(
                             description="The audio's language, ISO-639-1 (e.g. en); "
                             "detected where left out (Whisper)")] = None,
                         prompt: Prompt = None, response_format: Format = "json",
                         temperature: Temperature = 0.0,
                         timestamp_granularities: Granularities = None) -> Response:
    return await _transcribe(request, file, model, "transcribe", language, prompt,
                             response_format, temperature, timestamp_granularities)


@router.post("/v1/audio/translations", responses=RESPONSES)
async def translations(request: Request, file: AudioFile, model: Model,
                       prompt: Prompt = None, response_format: Format = "json",
                       temperature: Temperature = 0.0) -> Response:
    return await _transcribe(request, file, model, "translate", None, prompt,
                             response_format, temperature, None)
