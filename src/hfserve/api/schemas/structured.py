"""Structured output on the wire: OpenAI's ``response_format`` (text, json_object,
json_schema) and vLLM's ``guided_json`` / ``guided_regex`` / ``guided_choice``, and the
output constraint each one is."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from hfserve.api.schemas.common import Request
from hfserve.types import Constraint

# The characters every regex dialect treats as syntax outside a class (escaping others
# is an error in some: xgrammar's, which openvino-genai uses, refuses "\#").
_REGEX_SYNTAX = frozenset("\\.+*?()|[]{}^$")


class TextFormat(Request):
    type: Literal["text"]


class JsonObjectFormat(Request):
    type: Literal["json_object"]


class JsonSchema(Request):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(Request):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat,
                           Field(discriminator="type")]


def choice_regex(choices: list[str]) -> str:
    """A regular expression matching exactly one of ``choices``."""
    def escape(text: str) -> str:
        return "".join("\\" + c if c in _REGEX_SYNTAX else c for c in text)

    return "(" + "|".join(escape(c) for c in choices) + ")"


def schema_text(schema: Any) -> str:
    return json.dumps(schema, ensure_ascii=False, sort_keys=True)


class StructuredFields(BaseModel):
    response_format: ResponseFormat | None = None
    guided_json: dict[str, Any] | None = Field(
        None, description="A JSON schema the output follows (vLLM's extra)")
    guided_regex: str | None = Field(
        None, min_length=1, description="A regular expression the output matches (vLLM's)")
    guided_choice: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, min_length=1, max_length=256,
        description="The output is exactly one of these strings (vLLM's extra)")

    @model_validator(mode="after")
    def _one_constraint(self) -> StructuredFields:
        given = [name for name in ("guided_json", "guided_regex", "guided_choice")
                 if getattr(self, name) is not None]
        if self.response_format is not None and self.response_format.type != "text":
            given.append("response_format")
        if len(given) > 1:
            raise ValueError(f"{given[0]} and {given[1]} cannot be used together")
        return self

    def constraint(self) -> Constraint | None:
        """The output constraint the request asks for (None: free text)."""
        fmt = self.response_format
        if isinstance(fmt, JsonObjectFormat):
            return Constraint("json_schema", schema_text({"type": "object"}))
        if isinstance(fmt, JsonSchemaFormat):
            schema = fmt.json_schema.schema_
            return Constraint("json_schema", schema_text({} if schema is None else schema))
        if self.guided_json is not None:
            return Constraint("json_schema", schema_text(self.guided_json))
        if self.guided_regex is not None:
            return Constraint("regex", self.guided_regex)
        if self.guided_choice is not None:
            return Constraint("regex", choice_regex(self.guided_choice))
        return None
