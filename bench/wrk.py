"""One-sentence embeddings load from ``wrk`` (Debian's C load generator) with a Lua script that
cycles over the sentences: a client that costs a small fraction of what the Python load
generator does per request, for the load points where that one is the bottleneck.

``embeddings_load`` returns what ``bench.load.embeddings_load`` returns (rate, latency
percentiles, errors, CPU of server, client and everything else), so a run reads the same
whichever client made it; ``client`` says which."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.cpu import CpuMeter

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
done = function(summary, latency, requests)
  io.write(string.format("latency_us p50 %%d p95 %%d\\n", latency:percentile(50),
                         latency:percentile(95)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _children_seconds() -> float:
    t = os.times()
    return t.children_user + t.children_system


def embeddings(base_url: str, model: str, texts: list[str], *, connections: int,
               seconds: float, headers: dict[str, str] | None = None,
               threads: int = 1) -> dict:
    """Requests/s, latency p50/p95 (ms), non-2xx and socket errors of ``seconds`` of wrk at
    ``connections``, and wrk's own CPU seconds."""
    if not available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    bodies = ", ".join(lua_string(json.dumps({"model": model, "input": t})) for t in texts)
    # A space after "[": "[[" would open a Lua long string instead of indexing the table.
    extra = "\n".join(f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}"
                      for k, v in (headers or {}).items())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "embed.lua"
        script.write_text(SCRIPT % (bodies, extra))
        before = _children_seconds()
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
                              "-s", str(script), base_url], capture_output=True, text=True,
                             check=True).stdout
        cpu = _children_seconds() - before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    latency = re.search(r"latency_us p50 (\d+) p95 (\d+)", out)
    return {"rate": rate, "errors": (int(bad.group(1)) if bad else 0)
            + (sum(int(g) for g in sockets.groups()) if sockets else 0),
            "latency_p50_ms": int(latency.group(1)) / 1e3 if latency else float("nan"),
            "latency_p95_ms": int(latency.group(2)) / 1e3 if latency else float("nan"),
            "client_cpu_s": cpu, "output": out}


def embeddings_load(base_url: str, model: str, texts: list[str], *, concurrency: int,
                    warmup: float, duration: float, server_pid: int | None,
                    headers: dict[str, str] | None = None) -> dict:
    """``bench.load.embeddings_load``'s result for one sentence per request, from wrk: a
    warm-up run, then the measured one with the machine's CPU metered around it."""
    if warmup > 0:
        embeddings(base_url, model, texts, connections=concurrency, seconds=warmup,
                   headers=headers)
    meter = CpuMeter(server_pid)
    run = embeddings(base_url, model, texts, connections=concurrency, seconds=duration,
                     headers=headers)
    cpu = meter.read()
    wall = duration
    # CpuMeter counts this process as the client; wrk is a child process of its own.
    wrk_pct = 100 * run["client_cpu_s"] / wall
    cpu["client_cpu_pct"] += wrk_pct
    cpu["other_cpu_pct"] = max(0.0, cpu["other_cpu_pct"] - wrk_pct)
    errors = run["errors"]
    return {"concurrency": concurrency, "duration_s": duration,
            "requests": int(run["rate"] * duration), "errors": errors,
            "cancelled_at_end": 0,
            "error_samples": [run["output"][-500:]] if errors else [],
            "rate": run["rate"], "latency_p50_ms": run["latency_p50_ms"],
            "latency_p95_ms": run["latency_p95_ms"], **cpu,
            "unit": "sentences/s", "per_request": 1, "client": "wrk"}
