"""One-sentence embeddings load from ``wrk`` (Debian's C load generator) with a Lua script that
cycles over the sentences: a client that costs a small fraction of what the Python load
generator does per request, for the load points where that one is the bottleneck."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = """
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/v1/embeddings", nil, bodies[i])
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def embeddings(base_url: str, model: str, texts: list[str], *, connections: int,
               seconds: float, headers: dict[str, str] | None = None,
               threads: int = 1) -> dict:
    """Requests/s and non-2xx answers of ``seconds`` of wrk at ``connections``."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    bodies = ", ".join(lua_string(json.dumps({"model": model, "input": t})) for t in texts)
    # A space after "[": "[[" would open a Lua long string instead of indexing the table.
    extra = "\n".join(f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}"
                      for k, v in (headers or {}).items())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "embed.lua"
        script.write_text(SCRIPT % (bodies, extra))
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
                              "-s", str(script), base_url], capture_output=True, text=True,
                             check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rate": rate, "errors": int(bad.group(1)) if bad else 0, "output": out}
