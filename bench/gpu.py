"""Generation throughput on one GPU: plain transformers static-batch ``generate`` against
hfserve serving the same model, in one run.

(a) static: SmolLM2-135M-Instruct from its GGUF file in this process, a left-padded batch of
    B chat prompts, greedy, exactly N new tokens per row; tokens/s = B*N / wall time of one
    ``generate`` call after a warm-up call of the same shape.
(b) hfserve: the same GGUF served by ``hfserve serve`` (a subprocess), driven by B
    closed-loop streaming clients, each asking for N tokens with ``ignore_eos``; aggregate
    output tokens/s in a measurement window, TTFT and inter-token latency. Once per decode
    mode of ``--graphs``: ``on`` (fixed cache slots, steps replayed as CUDA graphs; eager
    slots on a CPU; prefill at fixed shapes, replayed as CUDA graphs too), ``nowait``
    (the same, with newcomers prefilled at the next step instead of gathered:
    ``prefill_wait_steps: 0``), ``eagerprefill`` (``on`` with eager prefill:
    ``prefill_graphs: false``), ``onestep`` (``on`` with one decode step queued at a time
    instead of groups of four: ``decode_steps: 1``), ``steps8`` (``on`` with groups of
    eight: ``decode_steps: 8``) and ``off`` (eager steps on a growing cache). The clients run in
    ``--client-procs`` processes (one Python process streams only ~7,500 chunks/s); their
    CPU together is the "client CPU %". ``--profile-s S`` records S seconds of py-spy
    samples of the server and its model process at the largest B of the first mode.

Results (JSON and a markdown table) are rewritten after every step, so a run cut short keeps
what it measured; ``--budget-s`` skips the steps that would start after it is spent.

    python3 bench/gpu.py --out bench/results                       # CUDA, the full run
    python3 bench/gpu.py --device cpu --batches 1,2 --max-tokens 8 --duration 3 --warmup 1
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import httpx  # noqa: E402

from bench import record  # noqa: E402
from bench.load import chat_load  # noqa: E402
from bench.sentences import chat_prompts  # noqa: E402
from bench.server import CHAT_GGUF, ServerOptions, ServerProcess  # noqa: E402
from bench.stats import ratio  # noqa: E402

MODEL = "smol"
# Decode modes: the model entry's settings for each.
MODES = {"on": {"cuda_graphs": True}, "nowait": {"cuda_graphs": True, "prefill_wait_steps": 0},
         "eagerprefill": {"cuda_graphs": True, "prefill_graphs": False},
         "onestep": {"cuda_graphs": True, "decode_steps": 1},
         "steps8": {"cuda_graphs": True, "decode_steps": 8},
         "off": {"cuda_graphs": False}}


def log(text: str = "") -> None:
    print(text, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                   help="folder for gpu.json, gpu.md and the server log")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--dtype", help="default bfloat16 on cuda, float32 on cpu")
    p.add_argument("--gguf", type=Path, default=CHAT_GGUF)
    p.add_argument("--batches", default="1,64,256",
                   help="static batch sizes = client concurrencies (comma-separated)")
    p.add_argument("--max-tokens", type=int, default=128, help="N, new tokens per sequence")
    p.add_argument("--prompts", type=int, default=16, help="distinct prompts, cycled")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before each window")
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per run")
    p.add_argument("--drain", type=float, default=2.0,
                   help="seconds streams may finish after a window before being cut off")
    p.add_argument("--pause", type=float, default=2.0, help="seconds idle between runs")
    p.add_argument("--no-ignore-eos", action="store_true",
                   help="do not send ignore_eos (streams may then end early and count as "
                        "errors)")
    p.add_argument("--graphs", default="on,off",
                   help="hfserve decode modes to run, in order: on (cuda_graphs: true), "
                        "nowait (on, prefill_wait_steps: 0), eagerprefill (on, "
                        "prefill_graphs: false), onestep (on, decode_steps: 1), steps8 "
                        "(on, decode_steps: 8), off")
    p.add_argument("--skip-static", action="store_true")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--budget-s", type=float, default=300.0,
                   help="overall time budget; steps that would start later are skipped")
    p.add_argument("--log-level", default="warning", help="hfserve's log level")
    p.add_argument("--client-procs", type=int,
                   default=max(1, min(8, (os.cpu_count() or 2) // 2)),
                   help="processes the streaming clients are spread over (default: half "
                        "the CPUs, 1 to 8)")
    p.add_argument("--profile-s", type=float, default=0.0,
                   help="seconds of py-spy profile (raw, 100 Hz) of the server and its model "
                        "process, 1 s into the window of the largest B of the first graphs "
                        "mode; 0: none")
    args = p.parse_args(argv)
    args.batches = [int(x) for x in args.batches.split(",") if x.strip()]
    args.graphs = [x.strip() for x in args.graphs.split(",") if x.strip() in MODES]
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    return args


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.t0 = time.monotonic()
        self.skipped: list[str] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, what: str, needs: float = 0.0) -> bool:
        """True when ``needs`` seconds still fit; else say that ``what`` is skipped."""
        if self.left() > needs:
            return True
        self.skipped.append(what)
        log(f"SKIPPED {what}: budget {self.seconds:.0f}s, {self.elapsed():.0f}s spent"
            + (f", needs ~{needs:.0f}s" if needs else ""))
        return False


# --- (a) static-batch generate ---------------------------------------------------------------

class StaticGenerator:
    def __init__(self, gguf: Path, device: str, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device
        folder, name = str(gguf.parent), gguf.name
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=getattr(torch, dtype)).to(device).eval()
        cfg = self.model.config
        if self.tokenizer.pad_token is None:  # the GGUF tokenizer may name none
            pad = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
            pad = pad[0] if isinstance(pad, list) else pad
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(pad)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def encode(self, prompts: list[str]) -> Any:
        texts = [self.tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return enc.to(self.device)

    def config(self, n: int) -> Any:
        gc_ = copy.deepcopy(self.model.generation_config)
        gc_.do_sample = False
        gc_.max_new_tokens = n
        gc_.min_new_tokens = n          # every row produces exactly n tokens
        gc_.temperature = gc_.top_p = gc_.top_k = None
        gc_.pad_token_id = self.tokenizer.pad_token_id
        return gc_

    def generate(self, enc: Any, n: int) -> Any:
        with self.torch.inference_mode():
            out = self.model.generate(**enc, generation_config=self.config(n))
        return out[:, enc["input_ids"].shape[1]:]

    def run(self, prompts: list[str], batch: int, n: int) -> dict:
        rows = [prompts[i % len(prompts)] for i in range(batch)]
        enc = self.encode(rows)
        t0 = time.perf_counter()
        self.generate(enc, n)                         # warm-up, same shape
        self.sync()
        warm = time.perf_counter() - t0
        self.sync()
        t0 = time.perf_counter()
        new = self.generate(enc, n)
        self.sync()
        seconds = time.perf_counter() - t0
        if tuple(new.shape) != (batch, n):
            raise RuntimeError(f"generate returned shape {tuple(new.shape)}, not {(batch, n)}")
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        out = {"batch": batch, "max_new_tokens": n, "seconds": seconds,
               "warmup_seconds": warm, "tokens_per_s": batch * n / seconds,
               "ms_per_step": seconds / n * 1e3, "padded_prompt_tokens": enc["input_ids"].shape[1],
               "mean_prompt_tokens": sum(lengths) / len(lengths)}
        if self.device.startswith("cuda"):
            out["max_memory_gib"] = self.torch.cuda.max_memory_allocated() / 2**30
        return out

    def text(self, prompt: str, n: int) -> str:
        new = self.generate(self.encode([prompt]), n)[0]
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def close(self) -> None:
        del self.model
        gc.collect()
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()


def static_phase(args: argparse.Namespace, prompts: list[str], budget: Budget,
                 results: dict, save) -> None:
    log(f"== static generate: {args.gguf.name} on {args.device}, {args.dtype}")
    t0 = time.monotonic()
    gen = StaticGenerator(args.gguf, args.device, args.dtype)
    results["static_load_s"] = time.monotonic() - t0
    log(f"   loaded in {results['static_load_s']:.1f}s")
    try:
        results["sample_static"] = gen.text(prompts[0], args.max_tokens)
        for batch in args.batches:
            if not budget.allows(f"static generate B={batch}"):
                break
            try:
                r = gen.run(prompts, batch, args.max_tokens)
            except Exception as exc:  # an out-of-memory or similar: record, go on
                r = {"batch": batch, "error": f"{type(exc).__name__}: {exc}"[:500]}
                log(f"   B={batch}: FAILED {r['error']}")
            else:
                log(f"   B={batch}: {r['tokens_per_s']:,.0f} tok/s ({r['seconds']:.2f}s, "
                    f"{r['ms_per_step']:.1f} ms/step, warm-up {r['warmup_seconds']:.2f}s)")
            results["static"][str(batch)] = r
            save()
    finally:
        gen.close()


# --- (b) hfserve -----------------------------------------------------------------------------

def server_phase(args: argparse.Namespace, prompts: list[str], budget: Budget,
                 results: dict, save) -> None:
    for mode in args.graphs:
        if not budget.allows(f"hfserve graphs {mode}", needs=60.0):
            break
        results["server"][mode] = {}
        serve_mode(args, prompts, budget, results, save, mode)


def find_py_spy() -> str | None:
    """py-spy on PATH, next to this Python, or in a PYTHONPATH entry's bin/ (where
    ``pip --target`` puts scripts)."""
    found = shutil.which("py-spy")
    folders = [Path(sys.executable).parent] + [
        Path(entry) / "bin" for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry]
    for exe in [found] + [str(folder / "py-spy") for folder in folders]:
        if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    return None


class Profiler:
    """py-spy of the server and its first model process (not multiprocessing's resource
    tracker), started ``delay`` s after ``start()`` in a thread, so the load goes on."""

    def __init__(self, exe: str, pid: int, seconds: float, out: Path,
                 delay: float = 1.0) -> None:
        self.exe, self.pid, self.seconds, self.out, self.delay = exe, pid, seconds, out, delay
        self.procs: list[tuple[Path, subprocess.Popen]] = []
        self.thread: Any = None
        self.problems: list[str] = []

    def targets(self) -> list[tuple[str, int]]:
        import psutil

        found = [("server", self.pid)]
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                if "resource_tracker" not in " ".join(child.cmdline()):
                    return [*found, ("model", child.pid)]
        except psutil.Error as exc:
            self.problems.append(f"py-spy: children of {self.pid}: {exc}")
        self.problems.append("py-spy: no model process (the model runs in the server's)")
        return found

    def _run(self) -> None:
        time.sleep(self.delay)
        try:
            for role, pid in self.targets():
                path = self.out / f"profile-{role}.txt"
                cmd = [self.exe, "record", "--pid", str(pid), "--duration",
                       str(max(1, round(self.seconds))), "--rate", "100", "--format", "raw",
                       "--nonblocking", "--output", str(path)]
                path.unlink(missing_ok=True)     # never report an old file
                self.procs.append((path, subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        except Exception as exc:
            self.problems.append(f"py-spy: could not start: {type(exc).__name__}: {exc}")

    def start(self) -> None:
        import threading

        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def finish(self) -> list[str]:
        """Wait for py-spy; one line per profile (written or why not)."""
        if self.thread is None:
            return ["py-spy: not started (the window never opened)"]
        self.thread.join(10.0)
        lines = list(self.problems)
        for path, proc in self.procs:
            try:
                _, err = proc.communicate(timeout=self.seconds + 20.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode == 0 and path.is_file() and path.stat().st_size:
                n = len(path.read_text().splitlines())
                lines.append(f"py-spy: wrote {path} ({n} stacks)")
            else:
                first = (err or "").strip().splitlines()[:1] or ["no output"]  # "Error: ..."
                lines.append(f"py-spy: no {path.name} (exit {proc.returncode}: {first[0]})")
        return lines


def serve_mode(args: argparse.Namespace, prompts: list[str], budget: Budget,
               results: dict, save, mode: str) -> None:
    model = {"name": MODEL, "source": str(args.gguf), "device": args.device,
             "dtype": args.dtype, "backend": "torch", "max_concurrent": max(args.batches),
             **MODES[mode]}
    results.setdefault("server_model", {})[mode] = model
    fields = {} if args.no_ignore_eos else {"ignore_eos": True}
    log(f"== hfserve, graphs {mode}: {model}")
    srv = ServerProcess(ServerOptions(models=[model], log_level=args.log_level),
                        args.out / f"gpu-server-{mode}.log")
    try:
        srv.start(timeout=max(30.0, min(300.0, budget.left())))
        results.setdefault("server_startup_s", {})[mode] = srv.startup_s
        log(f"   ready on {srv.base_url} in {srv.startup_s:.1f}s")
        with httpx.Client(base_url=srv.base_url, timeout=120) as client:
            info = client.get(f"/v1/models/{MODEL}").json()
            results.setdefault("server_info", {})[mode] = info
            log(f"   {info.get('backend')} on {info.get('device')}, {info.get('dtype')}")
            r = client.post("/v1/chat/completions", json={
                "model": MODEL, "max_tokens": args.max_tokens, "temperature": 0, **fields,
                "messages": [{"role": "user", "content": prompts[0]}]})
            if r.status_code != 200:
                raise RuntimeError(f"sample request: HTTP {r.status_code}: {r.text[:500]}")
            results.setdefault("sample_server", {})[mode] = \
                r.json()["choices"][0]["message"]["content"]
        save()
        window = args.warmup + args.duration + args.drain + args.pause
        for batch in args.batches:
            if not budget.allows(f"hfserve c={batch}", needs=window):
                break
            profiler = None
            if args.profile_s > 0 and mode == args.graphs[0] and batch == max(args.batches):
                exe = find_py_spy()
                if exe is None:
                    log("   py-spy not found (PATH, python's folder, PYTHONPATH bin/): "
                        "no profile")
                else:
                    profiler = Profiler(exe, srv.pid, args.profile_s, args.out)
            r = asyncio.run(chat_load(
                srv.base_url, MODEL, prompts, concurrency=batch, max_tokens=args.max_tokens,
                warmup=args.warmup, duration=args.duration, server_pid=srv.pid,
                drain=args.drain, fields=fields, processes=args.client_procs,
                at_start=profiler.start if profiler else None))
            if profiler is not None:
                try:
                    for line in profiler.finish():
                        log(f"   {line}")
                except Exception as exc:  # a profile is a bonus: never fail the run for it
                    log(f"   py-spy failed: {type(exc).__name__}: {exc}")
            r["server_alive"] = srv.alive()
            results["server"][mode][str(batch)] = r
            log(f"   c={batch}: {r['rate']:,.0f} tok/s, TTFT p50 {r['ttft_p50_ms']:.0f} ms, "
                f"ITL p50 {r['itl_p50_ms']:.1f} ms, {r['requests']} requests, "
                f"errors {r['errors']}, client CPU {r['client_cpu_pct']:.0f}%, "
                f"server CPU {r.get('server_cpu_pct', float('nan')):.0f}%")
            for sample in r["error_samples"][:2]:
                log(f"     error: {sample}")
            save()
            if not srv.alive():
                raise RuntimeError(f"hfserve died during c={batch}:\n{srv.log_tail()}")
            time.sleep(args.pause)     # streams cut off at the end: let the server settle
    finally:
        srv.stop(grace=5.0)
        results.setdefault("server_exit_code", {})[mode] = srv.exit_code
        results.setdefault("server_log_problems", {})[mode] = srv.log_problems()[:30]


# --- report ----------------------------------------------------------------------------------

def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(results: dict) -> str:
    rows = ["| B = clients | static generate tok/s | hfserve graphs | hfserve tok/s "
            "| hfserve/static | TTFT p50 ms | ITL p50 ms | hfserve requests | errors "
            "| client CPU % |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for batch in results["config"]["batches"]:
        st = results["static"].get(str(batch), {})
        a = st.get("tokens_per_s")
        for mode, served in (results["server"].items() or [("-", {})]):
            sv = served.get(str(batch), {})
            b = sv.get("rate")
            rows.append(" | ".join([
                f"| {batch}", _fmt(a, ",.0f"), mode, _fmt(b, ",.0f"),
                _fmt(ratio(b, a) if a and b is not None else None, ".2f"),
                _fmt(sv.get("ttft_p50_ms"), ".0f"), _fmt(sv.get("itl_p50_ms"), ".1f"),
                _fmt(sv.get("requests"), "d"), _fmt(sv.get("errors"), "d"),
                _fmt(sv.get("client_cpu_pct"), ".0f")]) + " |")
    env = results["environment"]
    head = (f"GPU: {env['gpu']}; torch {env['torch']} (CUDA {env['cuda']}), transformers "
            f"{env['transformers']}, Python {env['python']}; {results['config']['gguf']}, "
            f"{results['config']['dtype']}, N = {results['config']['max_tokens']} new tokens, "
            f"hfserve window {results['config']['duration']:.0f}s after "
            f"{results['config']['warmup']:.0f}s warm-up; clients in "
            f"{results['config'].get('client_procs', 1)} process(es), client CPU % = all of "
            f"them (100 = one core)")
    return head + "\n\n" + "\n".join(rows)


def environment(device: str) -> dict:
    import torch
    import transformers

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {"gpu": torch.cuda.get_device_name() if cuda else f"none ({device})",
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "platform": platform.platform()}


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)    # unwinds, so the server is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    signal.signal(signal.SIGTERM, _terminate)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.gguf.exists():
        raise SystemExit(f"missing model {args.gguf}")
    prompts = chat_prompts(args.prompts)
    results: dict = {**record.start(args), "environment": environment(args.device),
                     "static": {}, "server": {}, "skipped": budget.skipped}
    results["config"]["gguf"] = args.gguf.name
    env = results["environment"]
    log(f"GPU: {env['gpu']}; torch {env['torch']} (CUDA {env['cuda']}); transformers "
        f"{env['transformers']}; Python {env['python']}; {env['cpu_count']} CPUs")
    if args.device.startswith("cuda") and env["gpu"].startswith("none"):
        raise SystemExit("CUDA is not available; use --device cpu for a dry run")

    def save() -> None:
        results["elapsed_s"] = budget.elapsed()
        text = table(results)
        (args.out / "gpu.md").write_text(text + "\n")
        (args.out / "gpu.json").write_text(json.dumps(record.clean(results), indent=2))

    failed = False
    phases = [("static", static_phase, args.skip_static),
              ("hfserve", server_phase, args.skip_server)]
    for name, phase, skip in phases:
        if skip:
            continue
        if not budget.allows(f"phase {name}"):
            continue
        try:
            phase(args, prompts, budget, results, save)
        except (Exception, KeyboardInterrupt) as exc:
            failed = True
            results[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[-3000:]
            log(f"PHASE {name} FAILED: {type(exc).__name__}: {exc}")
        except SystemExit:            # SIGTERM (e.g. from `timeout`): keep what was measured
            results[f"{name}_error"] = "terminated"
            log(f"PHASE {name} TERMINATED after {budget.elapsed():.0f}s")
            save()
            raise
        save()
    for mode, text in results.get("sample_server", {}).items():
        if "sample_static" not in results:
            break
        same = results["sample_static"] == text
        results.setdefault("sample_texts_equal", {})[mode] = same
        log(f"greedy sample, static vs hfserve (graphs {mode}): "
            f"{'equal' if same else 'DIFFERENT'}")
        log(f"   static : {results['sample_static'][:160]!r}")
        log(f"   hfserve: {text[:160]!r}")
    save()
    log()
    log(table(results))
    log()
    log(f"total {budget.elapsed():.0f}s; results in {args.out / 'gpu.json'} and "
        f"{args.out / 'gpu.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
