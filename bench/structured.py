"""What structured output and forced tool calls cost: SmolLM2 chat streams at 8 clients,
plain against ``response_format`` json_schema against ``tools`` + ``tool_choice:
"required"``, in alternating rounds on one server.

Starts ``hfserve serve`` exactly as ``make serve`` does (examples/demo.yaml, no flags) and
sends every mode the same prompts, which ask for who did what, and where, in a sentence.
``plain`` is that request with ``ignore_eos`` (exactly ``max_tokens`` tokens, as make bench's
chat runs); ``json_schema`` adds a small fixed schema of those three fields; ``tools`` offers
one function taking them and requires a call. A constrained request ends when its JSON (or
call) closes, so every rate is output tokens per second counted per generated token
(``usage.completion_tokens``), and tokens per request are printed beside it; ending earlier
only counts against a mode (more prefill per generated token).
A tool call is streamed whole once its block is complete: its tokens count when it arrives.
Each round runs every mode once (the order rotates between rounds), each run on an idle
machine.

    .venv/bin/python bench/structured.py [--quick] [--rounds 3] [--out ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402

from bench import record  # noqa: E402
from bench.load import chat_load  # noqa: E402
from bench.phases import run_phase  # noqa: E402
from bench.report import _num, log_findings, targets_markdown  # noqa: E402
from bench.sentences import sentences  # noqa: E402
from bench.serve_bench import machine  # noqa: E402
from bench.server import CHAT_NAME, DEMO_CONFIG, ServerOptions, ServerProcess  # noqa: E402
from bench.stats import ratio  # noqa: E402

EVENT = {
    "type": "object",
    "properties": {
        "who": {"type": "string", "maxLength": 40},
        "did": {"type": "string", "maxLength": 40},
        "where": {"type": "string", "maxLength": 40},
    },
    "required": ["who", "did", "where"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "function": {
    "name": "record_event", "description": "Record who did what, and where.",
    "parameters": EVENT}}]
# Mode -> the request fields it adds to the same chat request. Plain runs to max_tokens, as
# make bench's chat runs do; a constrained request may end earlier, which only counts against
# it (more prefill per generated token).
MODES = {
    "plain": {"ignore_eos": True},
    "json_schema": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "event", "schema": EVENT, "strict": True}}},
    "tools": {"tools": TOOLS, "tool_choice": "required"},
}
PROMPT = "Who did what, and where, in this sentence? Answer as JSON. {s}"
MAX_LOSS = 0.10     # the target: at most this much slower per generated token than plain


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "structured.json")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, help="rounds of every mode (default 3, quick 1)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--duration", type=float, help="seconds measured per run (default 15, "
                   "quick 4)")
    p.add_argument("--wait-quiet", type=float,
                   help="before each run, wait up to this many seconds for the machine to be "
                        "idle (default 15, quick 5)")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (4.0 if quick else 15.0)
    args.warmup = 2.0 if quick else 5.0
    # After the window, requests in flight may finish (full run) or are cut off (quick).
    args.drain = 1.0 if quick else 30.0
    if args.wait_quiet is None:
        args.wait_quiet = 5.0 if quick else 15.0
    return args


def prompts(count: int = 64) -> list[str]:
    return [PROMPT.format(s=s) for s in sentences(count, seed=4321)]


def check(mode: str, answer: dict) -> str:
    """Whether one whole (non-streamed) answer is what ``mode`` asks for, in words."""
    choice = answer["choices"][0]
    message = choice["message"]
    if mode != "plain" and choice["finish_reason"] == "length":
        return "cut by max_tokens before it closed (the constraint held up to there)"
    try:
        if mode == "json_schema":
            value = json.loads(message["content"])
            missing = [k for k in EVENT["required"] if k not in value]
            return f"JSON, keys missing: {missing}" if missing else "JSON that fits the schema"
        if mode == "tools":
            calls = message.get("tool_calls") or []
            if not calls:
                return f"no tool call (finish {choice['finish_reason']})"
            arguments = json.loads(calls[0]["function"]["arguments"])
            return (f"{len(calls)} call(s) of {calls[0]['function']['name']}, arguments with "
                    f"keys {sorted(arguments)}")
    except (ValueError, TypeError) as exc:
        return f"not valid: {type(exc).__name__}: {exc}"
    return f"text (finish {choice['finish_reason']})"


def sample(client: httpx.Client, args: argparse.Namespace, prompt: str) -> dict:
    out = {}
    for mode, fields in MODES.items():
        r = client.post("/v1/chat/completions", json={
            "model": CHAT_NAME, "max_tokens": args.max_tokens, "temperature": 0, **fields,
            "messages": [{"role": "user", "content": prompt}]})
        r.raise_for_status()
        answer = r.json()
        message = answer["choices"][0]["message"]
        out[mode] = {"verdict": check(mode, answer),
                     "completion_tokens": answer["usage"]["completion_tokens"],
                     "content": message.get("content"), "tool_calls": message.get("tool_calls")}
        print(f"  {mode}: {out[mode]['verdict']}, {out[mode]['completion_tokens']} tokens: "
              f"{json.dumps(message.get('tool_calls') or message.get('content'))[:160]}",
              flush=True)
    return out


def order(round_: int) -> list[str]:
    """The modes of round ``round_``: rotated, so that none always runs first."""
    names = list(MODES)
    k = round_ % len(names)
    return names[k:] + names[:k]


def server_phase(args: argparse.Namespace, texts: list[str], log_path: Path) -> dict:
    out: dict = {"runs": {mode: [] for mode in MODES},
                 "setup": "make serve (examples/demo.yaml, no flags)"}
    with ServerProcess(ServerOptions(config=DEMO_CONFIG), log_path) as srv:
        print(f"hfserve ready on {srv.base_url} in {srv.startup_s:.1f}s", flush=True)
        out["startup_s"] = srv.startup_s
        with httpx.Client(base_url=srv.base_url, timeout=300) as client:
            out["samples"] = sample(client, args, texts[0])
            out["models"] = [m for m in client.get("/v1/models").json().get("data", [])
                             if m["id"] == CHAT_NAME]
        for m in out["models"]:
            print(f"  {m['id']}: {m.get('backend')} on {m.get('device')}, {m.get('dtype')}, "
                  f"threads {m.get('threads')}", flush=True)
        for round_ in range(args.rounds):
            for mode in order(round_):
                out["runs"][mode].append(run_phase(
                    srv, lambda mode=mode: chat_load(
                        srv.base_url, CHAT_NAME, texts, concurrency=args.clients,
                        max_tokens=args.max_tokens, warmup=args.warmup,
                        duration=args.duration, server_pid=srv.pid, drain=args.drain,
                        fields=MODES[mode], exact=False),
                    f"round {round_ + 1} {mode} c={args.clients}", args.wait_quiet))
    out["exit_code"] = srv.exit_code
    out["log_problems"] = srv.log_problems()[:50]
    return out


def summary(server: dict) -> dict:
    """Per mode: the mean rate over rounds, its range, tokens per request, TTFT, errors."""
    out = {}
    for mode, runs in server["runs"].items():
        rates = [r["rate"] for r in runs]
        requests = sum(r["requests"] for r in runs)
        out[mode] = {
            "rate": statistics.fmean(rates) if rates else float("nan"),
            "rates": rates,
            "tokens_per_request": (sum(r["tokens_per_request"] * r["requests"] for r in runs
                                       if r["requests"]) / requests
                                   if requests else float("nan")),
            "ttft_p50_ms": statistics.median(r["ttft_p50_ms"] for r in runs) if runs
            else float("nan"),
            "errors": sum(r["errors"] for r in runs),
            "other_cpu_pct_max": max((r["other_cpu_pct"] for r in runs), default=0.0)}
    plain = out.get("plain", {}).get("rate", float("nan"))
    for row in out.values():
        row["ratio_plain"] = ratio(row["rate"], plain)
    return out


def markdown(rows: dict, clients: int) -> str:
    lines = [f"| Mode ({clients} clients) | Output tokens/s (mean of rounds) | Rounds "
             "| / plain | Tokens/request | First chunk p50 ms | Errors | Other load max % |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for mode, r in rows.items():
        lines.append(f"| {mode} | {_num(r['rate'])} | "
                     f"{', '.join(_num(x) for x in r['rates'])} | {_num(r['ratio_plain'], 3)} "
                     f"| {_num(r['tokens_per_request'])} | {_num(r['ttft_p50_ms'], 0)} "
                     f"| {r['errors']} | {_num(r['other_cpu_pct_max'], 0)} |")
    return "\n".join(lines)


def targets(rows: dict, clients: int) -> list[dict]:
    out = []
    for mode in ("json_schema", "tools"):
        r = rows.get(mode)
        if r is None:
            continue
        value = r["ratio_plain"]
        out.append({"target": f"Chat, {clients} clients, {mode}: <= {MAX_LOSS:.0%} fewer "
                              "tokens/s than plain (per generated token)",
                    "hfserve": r["rate"], "reference": rows["plain"]["rate"], "op": ">=",
                    "ratio": value, "threshold": 1 - MAX_LOSS,
                    "met": None if value != value else value >= 1 - MAX_LOSS})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts = prompts()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {**record.start(args),
                     "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv]),
                     "schema": EVENT, "tools": TOOLS, "prompt": PROMPT}
    t0 = time.monotonic()
    print("hfserve phase: exactly `make serve` (examples/demo.yaml, no flags); modes "
          f"{', '.join(MODES)}, {args.rounds} round(s) at {args.clients} clients", flush=True)
    results["server"] = server_phase(args, texts, args.out.with_suffix(".server.log"))
    results["machine"] = machine()
    results["total_s"] = time.monotonic() - t0
    results["summary"] = summary(results["server"])
    results["targets"] = targets(results["summary"], args.clients)
    print()
    print("Rates are output tokens/s per generated token (usage.completion_tokens): plain "
          f"runs to max_tokens ({args.max_tokens}, ignore_eos), a constrained request ends "
          "when its JSON closes. A tool call is sent whole once complete: its tokens count "
          "when it arrives, and its first chunk is the whole call.")
    print(markdown(results["summary"], args.clients))
    print()
    print(targets_markdown(results["targets"]))
    for line in log_findings("hfserve", results["server"]):
        print(line)
    args.out.write_text(json.dumps(record.clean(results), indent=2))
    print(f"total {results['total_s']:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
