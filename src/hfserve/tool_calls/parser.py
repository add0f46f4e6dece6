"""Reading tool calls out of a model's output as it streams: text before (and between)
calls goes out as content at once, a call's block is held until it is complete and then
goes out as a call, and a block that is not a call (malformed JSON, an unknown shape) goes
out as the text it was. The non-streamed answer is the same parser fed the whole text."""

from __future__ import annotations

from hfserve.tool_calls.calls import ToolCall
from hfserve.tool_calls.formats import Format

OPENING = "{["        # starts that are the first character of the block's JSON


class ToolCallParser:
    """Feed it the output's text pieces; each ``feed`` and the final ``finish`` return
    what may be sent: strings (content) and ``ToolCall``s, in order."""

    def __init__(self, fmt: Format) -> None:
        self.format = fmt
        self._buffer = ""
        self._start: str | None = None      # the start of the block being read
        self._began = False                 # any non-space content sent yet
        self.calls = 0

    def feed(self, text: str) -> list[str | ToolCall]:
        self._buffer += text
        out: list[str | ToolCall] = []
        while True:
            if self._start is None:
                if not self._content(out):
                    break
            elif not self._block(out, final=False):
                break
        return out

    def finish(self) -> list[str | ToolCall]:
        out = self.feed("")
        if self._start is not None:
            self._block(out, final=True)
        if self._buffer:
            out.append(self._buffer)
            self._buffer = ""
        return [piece for piece in out if not isinstance(piece, str) or piece]

    # --- content: up to a block's start ------------------------------------------------
    def _content(self, out: list) -> bool:
        """Send the content before a start; True when a block starts."""
        fmt, buf = self.format, self._buffer
        if fmt.at_start_only and self._began:
            self._send(out, buf)
            return False
        found = [(buf.find(s), s) for s in fmt.starts if s in buf]
        if found:
            at, start = min(found)
            if not fmt.at_start_only or not buf[:at].strip():
                self._send(out, buf[:at])
                self._start = start
                self._buffer = buf[at if start in OPENING else at + len(start):]
                return True
        if fmt.at_start_only:
            lead = buf.lstrip()
            if lead and not any(s.startswith(lead[:len(s)]) for s in fmt.starts):
                self._send(out, buf)            # plain text: no block can follow
            return False
        held = max((n for s in fmt.starts for n in range(1, len(s))
                    if buf.endswith(s[:n])), default=0)
        self._send(out, buf[:len(buf) - held])
        return False

    def _send(self, out: list, text: str) -> None:
        if text:
            out.append(text)
            self._began = self._began or bool(text.strip())
        self._buffer = self._buffer[len(text):] if self._buffer.startswith(text) else ""

    # --- a block: up to its end --------------------------------------------------------
    def _block(self, out: list, final: bool) -> bool:
        """Read the block being held, when complete; True when content follows it."""
        fmt, buf = self.format, self._buffer
        if fmt.end is not None:
            at = buf.find(fmt.end)
            if at < 0 and not final:
                return False
            block, rest, closing = (buf, "", "") if at < 0 else \
                (buf[:at], buf[at + len(fmt.end):], fmt.end)
        elif final:
            block, rest, closing = buf, "", ""
        else:
            return False        # the block runs to the output's end
        calls = fmt.decode(block)
        start = "" if self._start in OPENING else self._start
        if calls is None:
            out.append(f"{start}{block}{closing}")
            self._began = True
        else:
            out.extend(calls)
            self.calls += len(calls)
        self._start, self._buffer = None, rest
        return True


def parse_text(fmt: Format, text: str) -> tuple[str, list[ToolCall]]:
    """The content and the calls of a whole output."""
    parser = ToolCallParser(fmt)
    pieces = parser.feed(text) + parser.finish()
    content = "".join(p for p in pieces if isinstance(p, str))
    return content, [p for p in pieces if isinstance(p, ToolCall)]
