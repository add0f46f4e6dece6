"""Tool calls in model output: the formats model families write them in, a parser that
reads them from streamed text, and the constraint that makes a model write one."""

from hfserve.tool_calls.calls import ToolCall
from hfserve.tool_calls.formats import FORMATS, Format
from hfserve.tool_calls.parser import ToolCallParser, parse_text

__all__ = ["FORMATS", "Format", "ToolCall", "ToolCallParser", "parse_text"]
