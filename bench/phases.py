"""Benchmark phases: one server under load (hfserve or a peer, the same load either way), and
the in-process baselines (torch, then OpenVINO), each run while no server is up."""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench import wrk
from bench.cpu import wait_quiet
from bench.load import chat_load, embeddings_load
from bench.peers import Infinity, PeerUnavailable, TransformersServe
from bench.sentences import chat_prompts
from bench.server import ManagedProcess


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def embed_jobs(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(clients, sentences per request) of every embeddings run."""
    jobs = [(c, 1) for c in parse_list(args.embed_clients)]
    if args.batch_clients:
        jobs.append((args.batch_clients, args.max_batch_size))
    return jobs


def raw_batches(args: argparse.Namespace) -> list[int]:
    """Raw batch sizes matching the embeddings runs: what the server can batch at most."""
    return sorted({1} | {min(c * per, args.max_batch_size) for c, per in embed_jobs(args)})


def batch_stats(client: httpx.Client, model: str) -> tuple[float, float]:
    """(sum, count) of hfserve's batch-size histogram for ``model``."""
    text = client.get("/metrics").text
    values = {}
    for kind in ("sum", "count"):
        m = re.search(rf'^hfserve_batch_size_{kind}{{model="{re.escape(model)}"}} (\S+)$',
                      text, re.M)
        values[kind] = float(m.group(1)) if m else 0.0
    return values["sum"], values["count"]


BUSY_PCT = 25.0   # other processes' CPU (% of one core) above which a run is repeated once


def run_phase(srv: ManagedProcess, coro_fn: Callable, label: str, quiet_s: float,
              metrics_model: str | None = None) -> dict:
    """One load run; repeated once, after a longer wait for an idle machine, when other
    processes took more than BUSY_PCT of a core during it."""
    busy_runs: list[float] = []
    while True:
        idle = wait_quiet(quiet_s if not busy_runs else 4 * quiet_s)
        with httpx.Client(base_url=srv.base_url, timeout=30) as client:
            s0, n0 = batch_stats(client, metrics_model) if metrics_model else (0, 0)
            result = asyncio.run(coro_fn())
            s1, n1 = batch_stats(client, metrics_model) if metrics_model else (0, 0)
        if result["other_cpu_pct"] <= BUSY_PCT or busy_runs or not srv.alive():
            break
        busy_runs.append(result["other_cpu_pct"])
        print(f"  {srv.name} {label}: other load {busy_runs[-1]:.0f}%, repeating", flush=True)
    result["mean_batch_size"] = (s1 - s0) / (n1 - n0) if n1 > n0 else None
    result["server_alive"] = srv.alive()
    result["machine_busy_before_pct"] = idle
    result["repeated_after_other_load_pct"] = busy_runs
    print(f"  {srv.name} {label}: {result['rate']:,.1f} {result['unit']}, errors "
          f"{result['errors']}, client {result.get('client', 'python')} at "
          f"{result['client_cpu_pct']:.0f}% of a core, other load {result['other_cpu_pct']:.0f}%"
          + (f", mean batch {result['mean_batch_size']:.1f}"
             if result["mean_batch_size"] else ""), flush=True)
    if not srv.alive():
        raise RuntimeError(f"{srv.name} died during {label}:\n{srv.log_tail()}")
    return result


def uses_wrk(args: argparse.Namespace, clients: int, per: int) -> bool:
    """Whether wrk drives this embeddings run: one sentence per request at or above
    ``--wrk-from`` clients, where the Python client would be the bottleneck (it spends more
    CPU per request than the server does)."""
    least = getattr(args, "wrk_from", 0)     # scripts without the option: never
    return per == 1 and bool(least) and clients >= least and wrk.available()


def embeddings_run(srv: ManagedProcess, args: argparse.Namespace, texts: list[str],
                   model: str, clients: int, per: int, fields: dict | None = None,
                   unit: str = "sentences/s") -> Callable:
    """The coroutine function of one embeddings run, from wrk or the Python client (the
    only one that sends more request ``fields``)."""
    if uses_wrk(args, clients, per) and not fields:
        async def run() -> dict:
            return await asyncio.to_thread(
                wrk.embeddings_load, srv.base_url, model, texts, concurrency=clients,
                warmup=args.warmup, duration=args.duration, server_pid=srv.pid)
        return run

    async def run_python() -> dict:
        out = await embeddings_load(srv.base_url, model, texts, concurrency=clients,
                                    per_request=per, warmup=args.warmup,
                                    duration=args.duration, server_pid=srv.pid,
                                    fields=fields, unit=unit)
        return {**out, "client": "python"}
    return run_python


def measure_server(srv: ManagedProcess, args: argparse.Namespace, texts: list[str],
                   prompts: list[str], out: dict, *, embed_model: str | None = None,
                   embed_fields: dict | None = None, embed_unit: str = "sentences/s",
                   chat_model: str | None = None, chat_fields: dict | None = None,
                   metrics: bool = False) -> None:
    """Every embeddings run (when ``embed_model``; ``embed_fields`` more fields of each
    request, ``embed_unit`` what is counted) and chat run (when ``chat_model``), appended
    to ``out["embeddings"]`` / ``out["chat"]`` as they finish."""
    pid = srv.pid
    if embed_model:
        jobs = embed_jobs(args)
        # Each run its own sentences, none sent twice in a phase: hfserve's response cache
        # (on by default) would answer repeats without running the model, peers have none.
        share = len(texts) // len(jobs)
        for k, (clients, per) in enumerate(jobs):
            own = texts[k * share:(k + 1) * share] if share else texts
            out.setdefault("embeddings", []).append(run_phase(
                srv, embeddings_run(srv, args, own, embed_model, clients, per,
                                    embed_fields, embed_unit),
                f"embeddings c={clients} x{per}", args.wait_quiet,
                embed_model if metrics else None))
    if chat_model:
        for clients in parse_list(args.chat_clients):
            out.setdefault("chat", []).append(run_phase(
                srv, lambda c=clients: chat_load(
                    srv.base_url, chat_model, prompts, concurrency=c,
                    max_tokens=args.max_tokens, warmup=args.chat_warmup,
                    duration=args.chat_duration, server_pid=pid, drain=args.chat_drain,
                    fields=chat_fields),
                f"chat c={clients}", args.wait_quiet, chat_model if metrics else None))


def raw_torch_phase(args: argparse.Namespace, texts: list[str], prompts: list[str],
                    server: dict) -> dict:
    from bench.raw import RawEmbedder, RawGenerator

    out: dict = {}
    embedder = RawEmbedder(args.embed_threads)
    for batch in raw_batches(args):
        wait_quiet(args.wait_quiet)
        out[f"embeddings_b{batch}"] = r = embedder.throughput(texts, batch, args.raw_duration)
        print(f"  raw torch embeddings batch {batch}: {r['rate']:,.1f} sentences/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    if server.get("sample_embeddings"):
        mine = embedder.embed(texts[:8])
        theirs = np.asarray(server["sample_embeddings"], dtype=np.float32)
        out["embedding_min_cosine"] = float(np.min(np.sum(mine * theirs, axis=1)))
    del embedder
    gc.collect()
    gen = RawGenerator(args.chat_threads)
    out["sample_chat"] = gen.text(prompts[0], args.max_tokens)
    out["chat_text_identical"] = out["sample_chat"] == server.get("sample_chat")
    for clients in parse_list(args.chat_clients):
        wait_quiet(args.wait_quiet)
        out[f"generate_b{clients}"] = r = gen.throughput(
            prompts, clients, args.max_tokens, args.raw_duration * (1 if clients == 1 else 2))
        print(f"  raw torch generate batch {clients}: {r['rate']:,.1f} tokens/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    return out


def _hint(dtype: str | None) -> str | None:
    """OpenVINO's precision hint for a dtype the server reported (float32: none given)."""
    return None if dtype in (None, "float32") else dtype


def raw_openvino_phase(args: argparse.Namespace, texts: list[str], prompts: list[str],
                       server: dict) -> dict:
    from bench.raw_openvino import RawOVEmbedder, RawOVGenerator

    out: dict = {}
    embedder = RawOVEmbedder(args.embed_threads, _hint(args.embed_dtype))
    out["embed_source"] = embedder.source
    for batch in raw_batches(args):
        wait_quiet(args.wait_quiet)
        out[f"embeddings_b{batch}"] = r = embedder.throughput(texts, batch, args.raw_duration)
        print(f"  raw OpenVINO embeddings batch {batch}: {r['rate']:,.1f} sentences/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    if server.get("sample_embeddings"):
        theirs = np.asarray(server["sample_embeddings"], dtype=np.float32)
        out["embedding_min_cosine"] = float(np.min(np.sum(embedder.embed(texts[:8]) * theirs,
                                                           axis=1)))
    del embedder
    gc.collect()
    gen = RawOVGenerator(args.chat_threads, _hint(args.chat_dtype))
    out.update(chat_folder=str(gen.folder), chat_options=gen.options, scheduler=gen.scheduler)
    out["sample_chat"] = gen.text(prompts[0], args.max_tokens)
    out["chat_text_identical"] = out["sample_chat"] == server.get("sample_chat")
    wait_quiet(args.wait_quiet)
    # Prompts of their own: the pipeline caches every prompt it prefills, and the runs below
    # should meet their prompts for the first time, as the server's runs did.
    out["prefill_ms"] = gen.prefill_ms(chat_prompts(41, seed=7))
    print(f"  raw OpenVINO prefill (TTFT of one request): {out['prefill_ms']:.1f} ms", flush=True)
    for clients in parse_list(args.chat_clients):
        wait_quiet(args.wait_quiet)
        out[f"chat_c{clients}"] = r = gen.throughput(
            prompts, clients, args.max_tokens, args.raw_warmup, args.raw_duration)
        print(f"  raw OpenVINO CB {clients} requests: {r['rate']:,.1f} tokens/s, TTFT p50 "
              f"{r['ttft_p50_ms']:.0f} ms, other load {r.get('other_cpu_pct', 0):.0f}%",
              flush=True)
    return out


def _peer(make: Callable[[], ManagedProcess], args: argparse.Namespace, texts: list[str],
          prompts: list[str], **load) -> dict:
    """One peer from install to stop; a failure at any point is recorded, never raised."""
    out: dict = {}
    try:
        srv = make()
        out.update(label=srv.label, version=srv.version, flags=srv.flags, model=srv.model_name,
                   precision=srv.precision, threads=srv.threads)
        print(f"{srv.label} ({srv.name} {srv.version}): {srv.precision}, threads "
              f"{srv.threads}", flush=True)
        with srv:
            out["startup_s"] = srv.startup_s
            with httpx.Client(base_url=srv.base_url, timeout=300) as client:  # first use
                if load.get("embed_model"):
                    client.post("/v1/embeddings", json={
                        "model": srv.model_name, "input": texts[:4],
                        **(load.get("embed_fields") or {})}).raise_for_status()
                if load.get("chat_model"):
                    client.post("/v1/chat/completions", json={
                        "model": srv.model_name, "max_tokens": args.max_tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": prompts[0]}],
                        **(load.get("chat_fields") or {})}).raise_for_status()
            measure_server(srv, args, texts, prompts, out, **load)
        out["exit_code"] = srv.exit_code
        out["log_problems"] = srv.log_problems()[:30]
    except (PeerUnavailable, RuntimeError, OSError, httpx.HTTPError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:3000]
        print(f"  peer failed: {out['error'][:500]}", flush=True)
    return out


def peers_phase(args: argparse.Namespace, texts: list[str], prompts: list[str],
                log_dir: Path) -> dict:
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    out: dict = {}
    if "infinity" in wanted:
        out["infinity"] = _peer(
            lambda: Infinity(log_dir / "infinity.log", args.max_batch_size), args, texts,
            prompts, embed_model=Infinity.model_name)
    if "transformers-serve" in wanted:
        for key, cb in (("transformers-serve", False), ("transformers-serve-cb", True)):
            out[key] = _peer(
                lambda cb=cb, key=key: TransformersServe(log_dir / f"{key}.log", cb, prompts),
                args, texts, prompts, chat_model=TransformersServe.model_name,
                chat_fields=TransformersServe.chat_fields(args.max_tokens))
    return out
