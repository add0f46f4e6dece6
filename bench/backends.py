"""all-MiniLM-L6-v2 on hfserve's three embedding backends side by side: eager torch, OpenVINO
(optimum-intel) and ONNX Runtime.

Starts one ``hfserve serve`` with the model three times (minilm-torch, minilm-openvino,
minilm-onnx; float32, the same threads), drives each alone over HTTP while the others idle
(1 client x 1 sentence, 16 clients x 32 sentences, 64 clients x 1 sentence), and stops it.
Then, with no server running, loads each backend in this process through hfserve's own
``EmbeddingSkill`` and placement and measures batches of 32 sentences (tokenization
included): the raw rate the server is compared with. Checks that every backend's embeddings
agree with torch's, prints one table and writes the results as JSON.

    .venv/bin/python bench/backends.py [--threads 2] [--duration 10] [--out ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench import record  # noqa: E402
from bench.cpu import wait_quiet  # noqa: E402
from bench.load import embeddings_load  # noqa: E402
from bench.phases import BUSY_PCT, run_phase  # noqa: E402
from bench.raw import _timed_loop  # noqa: E402
from bench.report import _num, log_findings  # noqa: E402
from bench.sentences import sentences  # noqa: E402
from bench.serve_bench import machine  # noqa: E402
from bench.server import CACHE_DIR, EMBED_DIR, ServerOptions, ServerProcess  # noqa: E402
from bench.stats import pct, ratio  # noqa: E402

# hfserve backend -> (served model name, label in the table).
BACKENDS = {
    "torch": ("minilm-torch", "eager torch"),
    "openvino": ("minilm-openvino", "OpenVINO"),
    "onnxruntime": ("minilm-onnx", "ONNX Runtime"),
}
REFERENCE = "torch"
COSINE_SENTENCES = 8
MIN_COSINE = 0.999


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backends.json")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma-separated subset of {', '.join(BACKENDS)}")
    p.add_argument("--threads", type=int, default=2,
                   help="intra-op threads of every model, server and raw alike (default 2)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds measured per HTTP run and per raw run (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each window")
    p.add_argument("--jobs", default="1x1,16x32,64x1",
                   help="HTTP runs as CLIENTSxSENTENCES, comma-separated")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="server batch limit and the raw batch size (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=0.0)
    p.add_argument("--wait-quiet", type=float, default=15.0,
                   help="before each run, wait up to this many seconds for an idle machine")
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        p.error(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
    args.jobs = [tuple(int(v) for v in job.lower().split("x")) for job in args.jobs.split(",")
                 if job.strip()]
    return args


def job_label(job: tuple[int, int]) -> str:
    return f"{job[0]}x{job[1]}"


def key_job(args: argparse.Namespace) -> tuple[int, int]:
    """The HTTP run compared with raw: the one with most sentences per request."""
    return max(args.jobs, key=lambda j: (j[1], j[0]))


def model_entries(args: argparse.Namespace) -> list[dict]:
    return [{"name": BACKENDS[b][0], "source": str(EMBED_DIR), "backend": b,
             "dtype": "float32", "threads": args.threads,
             "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}
            for b in args.backends]


def embed_sample(client: httpx.Client, model: str, texts: list[str]) -> np.ndarray:
    r = client.post("/v1/embeddings", json={"model": model, "input": texts})
    r.raise_for_status()
    return np.asarray([d["embedding"] for d in r.json()["data"]], dtype=np.float32)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def server_phase(args: argparse.Namespace, texts: list[str], log_path: Path) -> dict:
    opts = ServerOptions(models=model_entries(args))
    out: dict = {"runs": {}, "samples": {}}
    with ServerProcess(opts, log_path) as srv:
        print(f"hfserve ready on {srv.base_url} in {srv.startup_s:.1f}s", flush=True)
        out["startup_s"] = srv.startup_s
        with httpx.Client(base_url=srv.base_url, timeout=120) as client:
            out["models"] = client.get("/v1/models").json().get("data", [])
            for b in args.backends:
                out["samples"][b] = embed_sample(client, BACKENDS[b][0],
                                                 texts[:COSINE_SENTENCES]).tolist()
        for m in out["models"]:
            print(f"  {m['id']}: {m.get('backend')} on {m.get('device')}, {m.get('dtype')}, "
                  f"threads {m.get('threads')}", flush=True)
        for b in args.backends:
            name = BACKENDS[b][0]
            runs = out["runs"][b] = {}
            for clients, per in args.jobs:
                runs[job_label((clients, per))] = run_phase(
                    srv, lambda c=clients, n=per, m=name: embeddings_load(
                        srv.base_url, m, texts, concurrency=c, per_request=n,
                        warmup=args.warmup, duration=args.duration, server_pid=srv.pid),
                    f"{name} c={clients} x{per}", args.wait_quiet, name)
    out["exit_code"] = srv.exit_code
    out["log_problems"] = srv.log_problems()[:50]
    return out


def load_skill(backend: str, threads: int) -> Any:
    """hfserve's skill for MiniLM on ``backend``, placed as the server places it."""
    from hfserve.model_config import ModelConfig
    from hfserve.registry import build_spec
    from hfserve.runtime.lifecycle.manager import skill_classes
    from hfserve.runtime.lifecycle.placement import choices

    mc = ModelConfig(source=str(EMBED_DIR), name=BACKENDS[backend][0], backend=backend,
                     dtype="float32", threads=threads)
    spec = build_spec(mc)
    classes = skill_classes(spec.task)
    placement = choices(spec, mc, classes, CACHE_DIR)[0].placement
    skill = next(c for c in classes if backend in c.backends)(spec)
    skill.load(placement)
    skill.worker_init()
    return skill


def embed(skill: Any, batch: list[str]) -> np.ndarray:
    """prepare (tokenize) each sentence, then one batch: what a server batch runs."""
    return np.asarray(skill.run_batch([skill.prepare(t, {}) for t in batch]))


def raw_throughput(skill: Any, texts: list[str], batch_size: int, duration: float) -> dict:
    state = {"pos": 0}

    def step() -> int:
        pos = state["pos"]
        batch = (texts + texts)[pos:pos + batch_size]
        state["pos"] = (pos + batch_size) % len(texts)
        embed(skill, batch)
        return len(batch)

    units, seconds, times, cpu = _timed_loop(step, lambda: [step() for _ in range(3)],
                                             duration, min_runs=3)
    return {"batch_size": batch_size, "rate": units / seconds, "unit": "sentences/s",
            "batch_p50_ms": pct(times, 50) * 1e3, "seconds": seconds, **cpu}


def raw_backend(backend: str, args: argparse.Namespace, texts: list[str]) -> dict:
    t0 = time.monotonic()
    skill = load_skill(backend, args.threads)
    out: dict = {"load_s": time.monotonic() - t0, **skill.info()}
    out["sample"] = embed(skill, texts[:COSINE_SENTENCES]).tolist()
    busy: list[float] = []
    while True:   # like run_phase: repeated once when other processes took a core
        idle = wait_quiet(args.wait_quiet if not busy else 4 * args.wait_quiet)
        r = raw_throughput(skill, texts, args.max_batch_size, args.duration)
        if r["other_cpu_pct"] <= BUSY_PCT or busy:
            break
        busy.append(r["other_cpu_pct"])
        print(f"  raw {backend}: other load {busy[-1]:.0f}%, repeating", flush=True)
    out.update(r, machine_busy_before_pct=idle, repeated_after_other_load_pct=busy)
    skill.unload()
    del skill
    gc.collect()
    return out


def raw_phase(args: argparse.Namespace, texts: list[str]) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    out: dict = {}
    for b in args.backends:
        try:
            out[b] = r = raw_backend(b, args, texts)
        except Exception as exc:  # one backend failing must not lose the others
            out[b] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            print(f"  raw {b} failed: {out[b]['error'][:500]}", flush=True)
            continue
        print(f"  raw {b} batch {args.max_batch_size}: {r['rate']:,.1f} sentences/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    return out


def cosines(results: dict) -> dict:
    """Min cosine over the sample sentences: each backend vs torch (server and raw), and
    each backend's raw embeddings vs its own server model."""
    server, raw = results["server"]["samples"], results["raw"]
    out: dict = {}
    for b in server:
        row = out[b] = {}
        if REFERENCE in server:
            row["server_vs_torch"] = min_cosine(np.asarray(server[b]),
                                                np.asarray(server[REFERENCE]))
        if "sample" in raw.get(b, {}):
            row["raw_vs_server"] = min_cosine(np.asarray(raw[b]["sample"]),
                                              np.asarray(server[b]))
            if "sample" in raw.get(REFERENCE, {}):
                row["raw_vs_torch"] = min_cosine(np.asarray(raw[b]["sample"]),
                                                 np.asarray(raw[REFERENCE]["sample"]))
    return out


def notes(backend: str, results: dict) -> str:
    """Errors, other processes' CPU load (>= 10 % of a core) and a backend that differs from
    the one asked for."""
    parts = []
    served = next((m for m in results["server"].get("models", [])
                   if m["id"] == BACKENDS[backend][0]), {})
    if served.get("backend") not in (None, backend):
        parts.append(f"served on {served['backend']}")
    for label, run in results["server"]["runs"].get(backend, {}).items():
        if run["errors"]:
            parts.append(f"{label}: {run['errors']} errors")
        if run["other_cpu_pct"] >= 10:
            parts.append(f"{label}: other load {run['other_cpu_pct']:.0f}%")
    raw = results["raw"].get(backend, {})
    if raw.get("error"):
        parts.append("raw failed")
    elif raw.get("other_cpu_pct", 0) >= 10:
        parts.append(f"raw: other load {raw['other_cpu_pct']:.0f}%")
    return "; ".join(parts)


def table(results: dict, args: argparse.Namespace) -> list[dict]:
    key = job_label(key_job(args))
    runs = results["server"]["runs"]
    ref = runs.get(REFERENCE, {}).get(key, {}).get("rate", float("nan"))
    rows = []
    for b in args.backends:
        server = {label: run["rate"] for label, run in runs.get(b, {}).items()}
        raw = results["raw"].get(b, {}).get("rate", float("nan"))
        rows.append({"backend": b, "label": BACKENDS[b][1], "raw": raw, "server": server,
                     "ratio_raw": ratio(server.get(key, float("nan")), raw),
                     "ratio_torch": ratio(server.get(key, float("nan")), ref),
                     "cosine": results["cosines"].get(b, {}).get("server_vs_torch"),
                     "note": notes(b, results)})
    return rows


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    key = job_label(key_job(args))
    jobs = [job_label(j) for j in args.jobs]
    head = (f"| Backend | Raw batch {args.max_batch_size} | "
            + " | ".join(f"Server {j}" for j in jobs)
            + f" | Server {key} / raw | Server {key} / torch | Min cosine vs torch | Notes |")
    lines = [head, "|---|" + "---:|" * (len(jobs) + 4) + "---|"]
    for r in rows:
        cosine = "n/a" if r["cosine"] is None else f"{r['cosine']:.6f}"
        lines.append(f"| {r['label']} | {_num(r['raw'])} | "
                     + " | ".join(_num(r["server"].get(j)) for j in jobs)
                     + f" | {_num(r['ratio_raw'], 2)} | {_num(r['ratio_torch'], 2)} "
                     f"| {cosine} | {r['note']} |")
    return "\n".join(lines)


def check_lines(results: dict) -> list[str]:
    out = []
    for b, row in results["cosines"].items():
        parts = [f"{k.replace('_', ' ')} {v:.6f}" for k, v in row.items()]
        bad = any(v < MIN_COSINE for v in row.values())
        out.append(f"cosine {b}: {', '.join(parts) or 'n/a'}"
                   + (f"  ** below {MIN_COSINE} **" if bad else ""))
    out += log_findings("hfserve", results["server"])
    return out


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for dist in ("onnxruntime", "onnx", "optimum"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts = sentences(2048)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {**record.start(args),
                     "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv])}
    t0 = time.monotonic()
    print(f"hfserve phase: {', '.join(BACKENDS[b][0] for b in args.backends)} "
          f"(float32, threads {args.threads})", flush=True)
    results["server"] = server_phase(args, texts, args.out.with_suffix(".server.log"))
    print(f"raw in-process phase, batch {args.max_batch_size} (no server running)", flush=True)
    results["raw"] = raw_phase(args, texts)
    results["cosines"] = cosines(results)
    results["machine"] = {**machine(), **versions()}
    results["total_s"] = time.monotonic() - t0
    results["table"] = table(results, args)
    print()
    print(markdown(results["table"], args))
    print()
    for line in check_lines(results):
        print(line)
    results["server"].pop("samples", None)
    for raw in results["raw"].values():
        raw.pop("sample", None)
    args.out.write_text(json.dumps(record.clean(results), indent=2))
    print(f"total {results['total_s']:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
