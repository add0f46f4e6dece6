"""Reranking and text classification: hfserve against the same models run in-process and
against Infinity, side by side in one run.

Builds two classifiers from all-MiniLM-L6-v2 under .cache/bench-models: its real encoder
weights under a random head (seeded), a cross-encoder with one label and a classifier with
three, as ``BertForSequenceClassification``. Their scores mean nothing; their cost is that of
a real MiniLM cross-encoder or classifier, which is what is measured. Then, never two at
once:

1. ``hfserve serve`` with both models at its defaults (a name and a source each, as
   ``make serve`` serves a model), driven by closed-loop clients on /v1/rerank (1 query x 32
   documents per request) and /v1/classify (1 text per request) at 1 and 16 clients;
2. each model in this process, eager torch and OpenVINO (optimum-intel), at the threads and
   precision hfserve chose: batches of 32 pairs, and of as many texts as the classify runs
   can put in one batch (1 and 16), tokenization included;
3. Infinity (its defaults, torch engine) with both models, the same load on its own
   /v1/rerank and /v1/classify.

Prints one table, the targets and the scores' agreement, and writes the results as JSON.

    .venv/bin/python bench/families.py [--quick] [--out bench/results/families.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402

from bench import record  # noqa: E402
from bench.cpu import wait_quiet  # noqa: E402
from bench.family_report import agreement, details, markdown, table, targets  # noqa: E402
from bench.heads import CLASSIFY, HEADS, RERANK, build_classifier, random_keys  # noqa: E402
from bench.load import classify_load, rerank_load, rerank_request  # noqa: E402
from bench.peers import Infinity, PeerUnavailable  # noqa: E402
from bench.phases import parse_list, run_phase  # noqa: E402
from bench.report import log_findings, targets_markdown  # noqa: E402
from bench.sentences import distinct_sentences  # noqa: E402
from bench.serve_bench import machine  # noqa: E402
from bench.server import EMBED_DIR, ManagedProcess, ServerOptions, ServerProcess  # noqa: E402

SAMPLE_TEXTS = 8
NAN = float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "families.json")
    p.add_argument("--clients", default="1,16", help="comma-separated concurrencies")
    p.add_argument("--documents", type=int, default=32, help="documents per rerank request")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="the raw batch cap and Infinity's --batch-size (hfserve's own default "
                        "and Infinity's are 32 too)")
    p.add_argument("--duration", type=float, help="seconds measured per HTTP and raw run "
                   "(default 10, quick 3); rerank HTTP runs take twice as long")
    p.add_argument("--peers", default="infinity", help="'' for no Infinity phase")
    p.add_argument("--skip-raw", action="store_true", help="no in-process baselines")
    p.add_argument("--wait-quiet", type=float,
                   help="before each run, wait up to this many seconds for the machine to be "
                        "idle (default 15, quick 5)")
    args = p.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    # A rerank request is 32 pairs: at 16 clients one round of requests takes seconds, and
    # only requests that finish inside the window count, so its window is longer.
    args.rerank_duration = 2 * args.duration
    args.warmup = 1.0 if args.quick else 3.0
    if args.wait_quiet is None:
        args.wait_quiet = 5.0 if args.quick else 15.0
    args.clients = parse_list(args.clients)
    return args


def rerank_pairs(texts: list[str], documents: int, requests: int = 64) -> list[tuple[str, str]]:
    """The (query, document) pairs of the first ``requests`` rerank requests, in order."""
    return [(query, doc) for n in range(requests)
            for query, docs in [rerank_request(texts, n, documents)] for doc in docs]


# --- one server under load (hfserve or Infinity, the same load) --------------------------
def samples(client: httpx.Client, texts: list[str], documents: int) -> dict:
    """Scores of the first rerank request (by document index) and the label probabilities of
    the first texts (by label name), from hfserve's or Infinity's answers."""
    query, docs = rerank_request(texts, 0, documents)
    r = client.post("/v1/rerank", json={"model": RERANK, "query": query, "documents": docs,
                                        "return_documents": False})
    r.raise_for_status()
    rerank = [NAN] * documents
    for item in r.json()["results"]:
        rerank[item["index"]] = item["relevance_score"]
    r = client.post("/v1/classify", json={"model": CLASSIFY, "input": texts[:SAMPLE_TEXTS]})
    r.raise_for_status()
    names = list(HEADS[CLASSIFY].values())
    probs = []
    for row in r.json()["data"]:
        if isinstance(row, list):       # Infinity: [{label, score}, ...]
            by_label = {x["label"]: x["score"] for x in row}
            probs.append([by_label.get(n, NAN) for n in names])
        else:                           # hfserve (vLLM's form): probs in label order
            probs.append(row["probs"])
    return {"rerank": rerank, "classify": probs}


def measure(srv: ManagedProcess, args: argparse.Namespace, texts: list[str], out: dict,
            metrics: bool) -> None:
    """Every rerank run, then every classify run, appended to ``out`` as they finish. Each
    run its own sentences, none sent twice: hfserve's response cache (on by default) would
    answer repeats without running the model."""
    share = len(texts) // (2 * len(args.clients))
    own = iter([texts[k * share:(k + 1) * share] for k in range(2 * len(args.clients))])
    for c in args.clients:
        mine = next(own)
        out["rerank"].append(run_phase(
            srv, lambda c=c, mine=mine: rerank_load(
                srv.base_url, RERANK, mine, concurrency=c, documents=args.documents,
                warmup=args.warmup, duration=args.rerank_duration, server_pid=srv.pid),
            f"rerank c={c} x{args.documents}", args.wait_quiet, RERANK if metrics else None))
    for c in args.clients:
        mine = next(own)
        out["classify"].append(run_phase(
            srv, lambda c=c, mine=mine: classify_load(
                srv.base_url, CLASSIFY, mine, concurrency=c, warmup=args.warmup,
                duration=args.duration, server_pid=srv.pid),
            f"classify c={c}", args.wait_quiet, CLASSIFY if metrics else None))


def server_phase(args: argparse.Namespace, folders: dict[str, Path], texts: list[str],
                 log_path: Path) -> dict:
    opts = ServerOptions(models=[{"name": name, "source": str(folder)}
                                 for name, folder in folders.items()])
    out: dict = {"rerank": [], "classify": [],
                 "setup": "hfserve defaults (name and source only, as make serve)"}
    with ServerProcess(opts, log_path) as srv:
        print(f"hfserve ready on {srv.base_url} in {srv.startup_s:.1f}s", flush=True)
        out["startup_s"] = srv.startup_s
        with httpx.Client(base_url=srv.base_url, timeout=300) as client:
            out["samples"] = samples(client, texts, args.documents)    # loads both
            out["models"] = client.get("/v1/models").json().get("data", [])
        for m in out["models"]:
            print(f"  {m['id']}: {m.get('backend')} on {m.get('device')}, {m.get('dtype')}, "
                  f"threads {m.get('threads')}", flush=True)
        measure(srv, args, texts, out, metrics=True)
    out["exit_code"] = srv.exit_code
    out["log_problems"] = srv.log_problems()[:50]
    return out


def infinity_phase(args: argparse.Namespace, folders: dict[str, Path], texts: list[str],
                   log_dir: Path) -> dict:
    """Infinity from install to stop; a failure at any point is recorded, never raised."""
    out: dict = {"rerank": [], "classify": []}
    try:
        srv = Infinity(log_dir / "infinity-families.log", args.max_batch_size,
                       [(folder, name) for name, folder in folders.items()])
        out.update(label=srv.label, version=srv.version, flags=srv.flags,
                   precision=srv.precision, threads=srv.threads)
        print(f"{srv.label} {srv.version}: {srv.precision}, threads {srv.threads}, flags "
              f"{' '.join(srv.flags)}", flush=True)
        with srv:
            out["startup_s"] = srv.startup_s
            with httpx.Client(base_url=srv.base_url, timeout=300) as client:
                out["samples"] = samples(client, texts, args.documents)
            measure(srv, args, texts, out, metrics=False)
        out["exit_code"] = srv.exit_code
        out["log_problems"] = srv.log_problems()[:30]
    except (PeerUnavailable, RuntimeError, OSError, httpx.HTTPError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:3000]
        print(f"  Infinity failed: {out['error'][:500]}", flush=True)
    return out


# --- in-process baselines ----------------------------------------------------------------
def classify_batches(args: argparse.Namespace) -> list[int]:
    """What the classify runs can put in one batch at most: one text per client."""
    return sorted({min(c, args.max_batch_size) for c in args.clients})


def raw_engine(make: Callable, label: str, args: argparse.Namespace,
               folders: dict[str, Path], texts: list[str], served: dict[str, dict]) -> dict:
    """One engine's runs on both models, at the threads and precision hfserve chose for
    each (``make(folder, threads, dtype)`` -> a RawClassifier)."""
    out: dict = {}
    jobs = {RERANK: [("rerank", rerank_pairs(texts, args.documents),
                      min(args.documents, args.max_batch_size), "pairs/s")],
            CLASSIFY: [("classify", texts, b, "texts/s") for b in classify_batches(args)]}
    for name, runs in jobs.items():
        info = served.get(name, {})
        model = make(folders[name], info.get("threads") or 2, info.get("dtype"))
        out[f"{name}_threads"] = model.threads
        out[f"{name}_precision"] = getattr(model, "ov_config", {}).get(
            "INFERENCE_PRECISION_HINT", "float32")
        print(f"  {label} {name}: threads {model.threads}, precision "
              f"{out[f'{name}_precision']}", flush=True)
        if name == RERANK:
            query, docs = rerank_request(texts, 0, args.documents)
            out["sample_rerank"] = model.scores([(query, d) for d in docs])[:, 0].tolist()
        else:
            out["sample_classify"] = model.scores(texts[:SAMPLE_TEXTS]).tolist()
        for family, items, batch, unit in runs:
            wait_quiet(args.wait_quiet)
            out[f"{family}_b{batch}"] = r = model.throughput(items, batch, args.duration, unit)
            print(f"  raw {label} {family} batch {batch}: {r['rate']:,.1f} {unit}, other load "
                  f"{r['other_cpu_pct']:.0f}%", flush=True)
        del model
        gc.collect()
    return out


def raw_phases(args: argparse.Namespace, folders: dict[str, Path], texts: list[str],
               served: dict[str, dict]) -> dict:
    from bench.raw import RawClassifier

    out: dict = {}
    print("raw in-process phase, torch (no server running)", flush=True)
    out["torch"] = raw_engine(lambda f, t, _d: RawClassifier(f, t), "torch", args, folders,
                              texts, served)
    print("raw in-process phase, OpenVINO (no server running)", flush=True)
    try:
        from bench.raw_openvino import RawOVClassifier

        out["openvino"] = raw_engine(
            lambda f, t, d: RawOVClassifier(f, t, None if d in (None, "float32") else d),
            "OpenVINO", args, folders, texts, served)
    except (ImportError, RuntimeError) as exc:
        out["openvino"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  OpenVINO baselines unavailable: {exc}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts = distinct_sentences(100_000)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {**record.start(args),
                     "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv])}
    t0 = time.monotonic()
    folders = {name: build_classifier(name) for name in HEADS}
    results["models"] = {name: {"folder": str(f), "initialised_at_random": random_keys(f)}
                         for name, f in folders.items()}
    for name, f in folders.items():
        print(f"{name}: {EMBED_DIR.name}'s encoder weights, at random: "
              f"{', '.join(random_keys(f)) or 'nothing'} (throughput only: scores are "
              "meaningless)", flush=True)
    print("hfserve phase: both models at hfserve's defaults", flush=True)
    results["server"] = server_phase(args, folders, texts, args.out.with_suffix(".server.log"))
    served = {m["id"]: m for m in results["server"]["models"]}
    if not args.skip_raw:
        results["raw"] = raw_phases(args, folders, texts, served)
    if "infinity" in args.peers:
        print("peer: Infinity", flush=True)
        results["infinity"] = infinity_phase(args, folders, texts, args.out.parent / "peers")
    results["machine"] = machine()
    results["total_s"] = time.monotonic() - t0
    results["table"] = table(results, args)
    results["targets"] = targets(results["table"], args)
    print()
    print(markdown(results["table"]))
    print()
    print(targets_markdown(results["targets"]))
    print()
    print(details(results))
    print()
    for line in agreement(results):
        print(line)
    for name, server in (("hfserve", results["server"]), ("Infinity",
                                                          results.get("infinity", {}))):
        if "exit_code" in server:
            for line in log_findings(name, server):
                print(line)
    args.out.write_text(json.dumps(record.clean(results), indent=2))
    print(f"total {results['total_s']:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
