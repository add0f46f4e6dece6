"""POST /v1/responses wire types (OpenAI's Responses API, its text and function-tool
subset), and the chat request each one is: the Responses API is served by the chat path,
so templates, tool parsing, structured output and batching are the same."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from hfserve.api.schemas.chat import FunctionDefinition
from hfserve.api.schemas.common import ExtraOptions, Request
from hfserve.api.schemas.sampling import INT32
from hfserve.api.schemas.structured import JsonSchema


class InputText(Request):
    type: Literal["input_text", "output_text"]    # output_text: an earlier answer, sent back
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class InputImage(Request):
    type: Literal["input_image"]
    image_url: str = Field(description="A data URL or an http(s) URL of the image")
    detail: Literal["auto", "low", "high"] | None = None


InputPart = Annotated[InputText | InputImage, Field(discriminator="type")]


class MessageItem(Request):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallItem(Request):
    """A call the model made earlier, sent back with its output."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallOutputItem(Request):
    type: Literal["function_call_output"]
    call_id: str
    output: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


def _item_type(value: Any) -> str:
    """A message may leave its ``type`` out (OpenAI's "easy" input message)."""
    found = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return found or "message"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type)]


class FunctionTool(FunctionDefinition):
    """Chat's function definition, flat: ``type`` beside its fields."""

    type: Literal["function"]


class FunctionChoice(Request):
    type: Literal["function"]
    name: str


class TextFormatPlain(Request):
    type: Literal["text"]


class TextFormatJsonObject(Request):
    type: Literal["json_object"]


class TextFormatJsonSchema(JsonSchema):
    type: Literal["json_schema"]


class TextConfig(Request):
    format: Annotated[TextFormatPlain | TextFormatJsonObject | TextFormatJsonSchema,
                      Field(discriminator="type")] | None = None


class ResponsesRequest(ExtraOptions):
    model: str
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=INT32)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    tools: list[FunctionTool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool | None = Field(None, description="Accepted; this server keeps no responses")
    truncation: Literal["disabled"] | None = None
    previous_response_id: str | None = None

    @field_validator("previous_response_id")
    @classmethod
    def _kept_nowhere(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("this server keeps no responses: send the whole conversation "
                             "in input instead of previous_response_id")
        return None

    @field_validator("input")
    @classmethod
    def _some_input(cls, value: str | list[Any]) -> str | list[Any]:
        if not value:
            raise ValueError("input must not be empty")
        return value

    def chat_body(self) -> dict[str, Any]:
        """The chat completions request this response is."""
        body: dict[str, Any] = {
            "model": self.model, "messages": self._messages(), "stream": self.stream,
            "priority": self.priority, "timeout": self.timeout, "user": self.user,
            "metadata": self.metadata, "max_completion_tokens": self.max_output_tokens,
            "temperature": self.temperature, "top_p": self.top_p,
            "parallel_tool_calls": self.parallel_tool_calls}
        if self.tools:
            body["tools"] = [{"type": "function",
                              "function": t.model_dump(exclude={"type"}, exclude_none=True)}
                             for t in self.tools]
        if isinstance(self.tool_choice, FunctionChoice):
            body["tool_choice"] = {"type": "function",
                                   "function": {"name": self.tool_choice.name}}
        else:
            body["tool_choice"] = self.tool_choice
        form = self.text.format if self.text else None
        if isinstance(form, TextFormatJsonSchema):
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": form.model_dump(exclude={"type"}, exclude_none=True,
                                               by_alias=True)}
        elif form is not None:
            body["response_format"] = {"type": form.type}
        return {k: v for k, v in body.items() if v is not None}

    def _messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.instructions:
            messages.append({"role": "system", "content": self.instructions})
        if isinstance(self.input, str):
            return [*messages, {"role": "user", "content": self.input}]
        for item in self.input:
            if isinstance(item, MessageItem):
                messages.append({"role": item.role, "content": _content(item.content)})
            elif isinstance(item, FunctionCallItem):
                call = {"id": item.call_id, "type": "function",
                        "function": {"name": item.name, "arguments": item.arguments}}
                last = messages[-1] if messages else None
                if last is not None and last["role"] == "assistant":
                    last.setdefault("tool_calls", []).append(call)
                else:
                    messages.append({"role": "assistant", "content": None,
                                     "tool_calls": [call]})
            else:
                messages.append({"role": "tool", "tool_call_id": item.call_id,
                                 "content": item.output})
        return messages


def _content(content: str | list[InputText | InputImage]) -> str | list[dict[str, Any]]:
    """Text parts joined into one string (what every chat template reads); with an image,
    chat's content parts."""
    if isinstance(content, str):
        return content
    if all(isinstance(p, InputText) for p in content):
        return "".join(p.text for p in content)
    return [{"type": "text", "text": p.text} if isinstance(p, InputText)
            else {"type": "image_url", "image_url": {"url": p.image_url}}
            for p in content]
