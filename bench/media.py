"""CLIP image embeddings and Whisper transcription: hfserve against the same models run
in-process and, for images, Infinity, measured side by side in one run.

Models (bench/media_models.py): CLIP ViT-B/32's and whisper-tiny's architectures at their
real sizes, random weights (HF Hub is out of reach; throughput does not depend on the
weights). Inputs (bench/media_inputs.py): 224x224 PNGs made here, sent as data URLs, and
10 s of speech spoken by espeak-ng. Phases, never two at once, each run starting on an idle
machine:

1. hfserve, every setting at its default as `make serve` runs a model (the generated
   config names the two folders and nothing else): one image per ``POST /v1/embeddings``
   with ``modality: image`` at 1 and 16 clients, then one clip per
   ``POST /v1/audio/transcriptions`` (multipart, ``language=en``) at 1 and 4 clients.
   Inputs repeat, so every request says ``Cache-Control: no-cache``: each one runs the
   model (Infinity runs with its result cache off for the same reason).
2. Raw in-process, eager torch at the threads and precision the server reported:
   ``get_image_features`` at batch 1 and 16, ``generate`` at batch 1 and 4.
3. Infinity on the CLIP folder, the same image load.

Random weights never end a transcript on their own: the Whisper folder's generation config
suppresses ``<|endoftext|>`` and fixes ``max_new_tokens`` (64), which the server's pipeline
and the raw ``generate`` both read, so every request decodes exactly that many tokens.

    .venv/bin/python bench/media.py [--quick] [--peers ''] [--out bench/results/media.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench import load, record  # noqa: E402
from bench.cpu import wait_quiet  # noqa: E402
from bench.load import transcription_load  # noqa: E402
from bench.media_inputs import data_url, images, speech  # noqa: E402
from bench.media_models import (  # noqa: E402
    CLIP_DIR,
    CLIP_NAME,
    WHISPER_DIR,
    WHISPER_NAME,
    clip_folder,
    whisper_folder,
)
from bench.peers import Infinity  # noqa: E402
from bench.phases import _peer, measure_server, parse_list, run_phase  # noqa: E402
from bench.report import (  # noqa: E402
    _notes,
    _num,
    _peer_run,
    _row,
    log_findings,
    markdown,
    targets_markdown,
)
from bench.serve_bench import machine  # noqa: E402
from bench.server import ServerOptions, ServerProcess  # noqa: E402
from bench.stats import ratio  # noqa: E402

IMAGE_FIELDS = {"modality": "image"}        # Infinity's field, which hfserve takes too
NO_CACHE = {"Cache-Control": "no-cache"}
NAN = float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "media.json")
    p.add_argument("--image-clients", default="1,16", help="comma-separated concurrencies")
    p.add_argument("--speech-clients", default="1,4", help="comma-separated concurrencies")
    p.add_argument("--images", type=int, default=32, help="distinct PNGs the load cycles over")
    p.add_argument("--speech-seconds", type=float, default=10.0, help="audio per request")
    p.add_argument("--language", default="en", help="the transcription requests' language")
    p.add_argument("--max-new-tokens", type=int, default=64,
                   help="tokens every transcript decodes (the Whisper folder's generation "
                        "config)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="Infinity's --batch-size (its default, and hfserve's max_batch_size)")
    p.add_argument("--duration", type=float, help="seconds measured per image run")
    p.add_argument("--speech-duration", type=float, help="seconds measured per speech run")
    p.add_argument("--peers", default="infinity", help="peer servers ('' for none)")
    p.add_argument("--skip-raw", action="store_true", help="no in-process baselines")
    p.add_argument("--wait-quiet", type=float,
                   help="before each run, wait up to this many seconds for the machine to "
                        "be idle (default 15, quick 5)")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.warmup = 1.0 if quick else 3.0
    # a transcript takes seconds: long windows, so that the requests cut off at the window's
    # end (each client's last, counted only if it ends inside) weigh little
    args.speech_duration = args.speech_duration or (15.0 if quick else 40.0)
    args.speech_warmup = 3.0 if quick else 10.0
    args.raw_duration = 3.0 if quick else 10.0
    if args.wait_quiet is None:
        args.wait_quiet = 5.0 if quick else 15.0
    # what bench.phases.measure_server reads: one image per request, the Python client
    args.embed_clients, args.batch_clients = args.image_clients, 0
    args.max_batch_size, args.wrk_from = args.batch_size, 0
    return args


def server_phase(args: argparse.Namespace, urls: list[str], wav: bytes,
                 log_path: Path) -> dict:
    models = [{"name": CLIP_NAME, "source": str(CLIP_DIR)},
              {"name": WHISPER_NAME, "source": str(WHISPER_DIR)}]
    out: dict = {"setup": "defaults (a config naming the two folders)", "embeddings": [],
                 "transcriptions": []}
    with ServerProcess(ServerOptions(models=models), log_path) as srv:
        print(f"hfserve ready on {srv.base_url} in {srv.startup_s:.1f}s", flush=True)
        out["startup_s"] = srv.startup_s
        with httpx.Client(base_url=srv.base_url, timeout=300, headers=NO_CACHE) as client:
            emb = client.post("/v1/embeddings", json={"model": CLIP_NAME, "input": urls[:8],
                                                      **IMAGE_FIELDS})
            emb.raise_for_status()
            out["sample_embeddings"] = [d["embedding"] for d in emb.json()["data"]]
            text = client.post("/v1/audio/transcriptions", files={
                "file": ("speech.wav", wav, "audio/wav")}, data={
                "model": WHISPER_NAME, "language": args.language})
            text.raise_for_status()
            out["sample_transcript"] = text.json()["text"]
            out["models"] = client.get("/v1/models").json().get("data", [])
        for m in out["models"]:
            print(f"  {m['id']}: {m.get('backend')} on {m.get('device')}, {m.get('dtype')}, "
                  f"threads {m.get('threads')}", flush=True)
        measure_server(srv, args, urls, [], out, embed_model=CLIP_NAME,
                       embed_fields=IMAGE_FIELDS, embed_unit="images/s", metrics=True)
        for clients in parse_list(args.speech_clients):
            run = run_phase(srv, lambda c=clients: transcription_load(
                srv.base_url, WHISPER_NAME, [wav], seconds=args.speech_seconds,
                concurrency=c, warmup=args.speech_warmup, duration=args.speech_duration,
                server_pid=srv.pid, tokens_per_request=args.max_new_tokens,
                fields={"language": args.language}),
                f"transcription c={clients}", args.wait_quiet, WHISPER_NAME)
            print(f"    = {run['tokens_per_s']:,.1f} tokens/s, "
                  f"{run['requests_per_s']:.2f} requests/s", flush=True)
            out["transcriptions"].append(run)
    out["exit_code"] = srv.exit_code
    out["log_problems"] = srv.log_problems()[:50]
    return out


def served_as(server: dict, name: str) -> tuple[int, str | None]:
    """The threads and dtype the server reported for model ``name`` (2 and float32 when it
    did not say)."""
    info = next((m for m in server.get("models", []) if m["id"] == name), {})
    return int(info.get("threads") or 2), info.get("dtype")


def raw_phase(args: argparse.Namespace, urls: list[str], wav: bytes, server: dict) -> dict:
    from bench.raw_media import RawClip, RawWhisper
    from hfserve.media.audio import decode
    from hfserve.media.images import ImageLimits, load_image

    out: dict = {}
    threads, dtype = served_as(server, CLIP_NAME)
    print(f"  CLIP: eager torch, {dtype or 'float32'}, threads {threads}", flush=True)
    pictures = [load_image(u, ImageLimits()) for u in urls]    # as the server decodes them
    clip = RawClip(CLIP_DIR, threads, dtype)
    for batch in sorted(set(parse_list(args.image_clients))):
        wait_quiet(args.wait_quiet)
        out[f"images_b{batch}"] = r = clip.throughput(pictures, batch, args.raw_duration)
        print(f"  raw torch get_image_features batch {batch}: {r['rate']:,.1f} images/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    if server.get("sample_embeddings"):
        theirs = np.asarray(server["sample_embeddings"], dtype=np.float32)
        mine = clip.embed(pictures[:len(theirs)])
        out["embedding_min_cosine"] = float(np.min(np.sum(mine * theirs, axis=1)))
    del clip
    gc.collect()
    threads, dtype = served_as(server, WHISPER_NAME)
    whisper = RawWhisper(WHISPER_DIR, threads, dtype, args.language, args.max_new_tokens)
    out["num_beams"] = whisper.num_beams
    config = whisper.generation_config
    print(f"  Whisper: eager torch, {dtype or 'float32'}, threads {threads}, decoding as "
          f"the speech-recognition pipeline: {whisper.num_beams} beam(s), max_new_tokens "
          f"{config.max_new_tokens}, max_length {config.max_length}", flush=True)
    clip_samples = decode(wav, whisper.rate)                    # as the server decodes it
    texts, counts = whisper.transcribe([clip_samples])
    if counts[0] != args.max_new_tokens:
        raise RuntimeError(f"raw generate made {counts[0]} new tokens, not "
                           f"{args.max_new_tokens}: the folder's generation config does not "
                           "fix the length")
    out.update(sample_transcript=texts[0], new_tokens=counts[0],
               transcript_identical=texts[0].strip() == (server.get("sample_transcript")
                                                          or "").strip())
    for batch in sorted(set(parse_list(args.speech_clients))):
        wait_quiet(args.wait_quiet)
        out[f"speech_b{batch}"] = r = whisper.throughput([clip_samples], batch,
                                                         2 * args.raw_duration)
        print(f"  raw torch generate batch {batch}: {r['rate']:,.1f} audio s/s, "
              f"{r['tokens_per_s']:,.1f} tokens/s, other load {r['other_cpu_pct']:.0f}%",
              flush=True)
    return out


def peers_phase(args: argparse.Namespace, urls: list[str], log_dir: Path) -> dict:
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    out: dict = {}
    if "infinity" in wanted:
        out["infinity"] = _peer(
            lambda: Infinity(log_dir / "infinity-clip.log", args.batch_size,
                             [(CLIP_DIR, CLIP_NAME)], images=True), args, urls, [],
            embed_model=CLIP_NAME,
            embed_fields=IMAGE_FIELDS, embed_unit="images/s")
    return out


def comparison(results: dict) -> list[dict]:
    """Rows for ``bench.report.markdown``: images/s at each concurrency (raw at batch =
    clients, the most the server can batch; Infinity as peer A), then audio seconds/s and
    tokens/s of transcription (no peer)."""
    server, raw, rows = results["server"], results.get("raw", {}), []
    none = (None, "")
    for run in server["embeddings"]:
        c = run["concurrency"]
        peer = _peer_run(results, "infinity", "embeddings", c, 1)
        base = raw.get(f"images_b{c}", {})
        rows.append(_row("CLIP image embeddings, 1 image/request", "images/s", c,
                         run["rate"], (base.get("rate", NAN), f"torch, batch {c}"),
                         [((peer[0] or {}).get("rate", NAN), peer[1]), (NAN, "")],
                         _notes(run, [peer, none])))
    for run in server["transcriptions"]:
        c = run["concurrency"]
        base = raw.get(f"speech_b{c}", {})
        label = f"torch generate, {raw.get('num_beams', '?')} beams, batch {c}"
        workload = f"Transcription, {run['seconds_per_request']:g} s/request"
        note = _notes(run, [none, none])
        rows.append(_row(workload, "audio s/s", c, run["rate"],
                         (base.get("rate", NAN), label), [(NAN, ""), (NAN, "")], note, 2))
        rows.append(_row(workload, f"tokens/s ({run['tokens_per_request']}/request)", c,
                         run["tokens_per_s"], (base.get("tokens_per_s", NAN), label),
                         [(NAN, ""), (NAN, "")], ""))
    return rows


def targets(table: list[dict], clients: int = 16) -> list[dict]:
    row = next((r for r in table if r["metric"] == "images/s" and r["clients"] == clients),
               {})
    mine, other = row.get("hfserve", NAN), row.get("raw", NAN)
    r = ratio(mine, other)
    return [{"target": f"CLIP image embeddings, {clients} clients: >= 85% of raw in-process",
             "hfserve": mine, "reference": other, "op": ">=", "ratio": r, "threshold": 0.85,
             "met": None if r != r else r >= 0.85}]


def details(results: dict) -> str:
    lines = ["| Server | Run | Clients | Rate | Latency p50 / p95 ms "
             "| CPU % server / client / other | Errors | Mean batch |",
             "|---|---|---:|---:|---|---|---:|---:|"]
    servers = [("hfserve", results["server"])] + [
        (p.get("label", key), p) for key, p in results.get("peers", {}).items()]
    for name, server in servers:
        for kind in ("embeddings", "transcriptions"):
            for run in server.get(kind, []):
                lines.append(
                    f"| {name} | {'images' if kind == 'embeddings' else 'speech'} "
                    f"| {run['concurrency']} | {_num(run['rate'])} {run['unit']} "
                    f"| {_num(run['latency_p50_ms'])} / {_num(run['latency_p95_ms'])} "
                    f"| {_num(run.get('server_cpu_pct'), 0)} / {_num(run['client_cpu_pct'], 0)}"
                    f" / {_num(run['other_cpu_pct'], 0)} | {run['errors']} "
                    f"| {_num(run.get('mean_batch_size'))} |")
    lines.append("")
    for m in results["server"].get("models", []):
        lines.append(f"- hfserve {m['id']}: {m.get('backend')} on {m.get('device')}, "
                     f"{m.get('dtype')}, threads {m.get('threads')}")
    for peer in results.get("peers", {}).values():
        if "label" in peer:
            lines.append(f"- {peer['label']} {peer.get('version', '')}: "
                         f"{peer.get('precision')}, threads {peer.get('threads')}, flags "
                         f"{' '.join(peer.get('flags', []))}")
        if peer.get("error"):
            lines.append(f"- not measured: {peer['error'].splitlines()[0][:300]}")
    for key, run in results.get("raw", {}).items():
        if isinstance(run, dict):
            lines.append(f"- raw {key}: {run['engine']}, batch p50 {_num(run['batch_p50_ms'])}"
                         f" ms, other load {_num(run['other_cpu_pct'], 0)}%")
    return "\n".join(lines)


def checks(results: dict) -> list[str]:
    out = ["weights are random (CLIP ViT-B/32's and whisper-tiny's architectures and sizes): "
           "throughput only, the outputs mean nothing"]
    raw = results.get("raw", {})
    if raw.get("embedding_min_cosine") is not None:
        out.append(f"image embeddings hfserve vs raw torch: min cosine "
                   f"{raw['embedding_min_cosine']:.6f}")
    if "transcript_identical" in raw:
        out.append(f"transcript hfserve == raw generate: {raw['transcript_identical']} "
                   f"(raw: {raw['new_tokens']} new tokens, {raw['sample_transcript'][:60]!r};"
                   f" hfserve: {results['server'].get('sample_transcript', '')[:60]!r})")
    for name, server in {"hfserve": results["server"], **results.get("peers", {})}.items():
        out += log_findings(name, server)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_suffix(".server.log")
    results: dict = {**record.start(args),
                     "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv])}
    t0 = time.monotonic()
    clip_folder()
    whisper_folder(args.max_new_tokens)
    urls = [data_url(png) for png in images(args.images)]
    wav = speech(args.speech_seconds)
    results["inputs"] = {"images": len(urls), "image_bytes_mean": float(np.mean(
        [len(u) for u in urls])), "speech_seconds": args.speech_seconds,
        "speech_bytes": len(wav)}
    load.HEADERS.update(NO_CACHE)       # every request runs the model
    print("hfserve phase: default settings, the two folders only", flush=True)
    results["server"] = server_phase(args, urls, wav, log_path)
    if not args.skip_raw:
        print("raw in-process phase, torch (no server running)", flush=True)
        results["raw"] = raw_phase(args, urls, wav, results["server"])
    if args.peers:
        print("peer servers", flush=True)
        results["peers"] = peers_phase(args, urls, log_path.parent / "peers")
    results["machine"] = machine()
    results["total_s"] = time.monotonic() - t0
    results["table"] = comparison(results)
    results["targets"] = targets(results["table"])
    print()
    print(markdown(results["table"]))
    print()
    print(targets_markdown(results["targets"]))
    print()
    print(details(results))
    for line in checks(results):
        print(line)
    results["server"].pop("sample_embeddings", None)
    args.out.write_text(json.dumps(record.clean(results), indent=2))
    print(f"total {results['total_s']:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
