"""Turn benchmark results into table rows and a markdown table."""

from __future__ import annotations

import math
from typing import Any

from bench.stats import ratio


def _num(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _cpu(phase: dict) -> str:
    return (f"{_num(phase['server_cpu_pct'], 0)} / {_num(phase['client_cpu_pct'], 0)} / "
            f"{_num(phase['other_cpu_pct'], 0)}")


def _busy(raw: dict) -> str:
    other = raw.get("other_cpu_pct", 0.0)
    return f"; raw other load {other:.0f}%" if other >= 10 else ""


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per server measurement, paired with its raw baseline."""
    out = []
    raw = results.get("raw", {})
    max_batch = results["config"]["max_batch_size"]
    emb_raw = raw.get(f"embeddings_b{max_batch}", {}).get("rate", float("nan"))
    emb_raw1 = raw.get("embeddings_b1", {}).get("rate", float("nan"))
    for phase in results["server"]["embeddings"]:
        per = phase["per_request"]
        latency = f"req {_num(phase['latency_p50_ms'])} / {_num(phase['latency_p95_ms'])} ms"
        batch = phase.get("mean_batch_size")
        note = f"mean batch {_num(batch)}" if batch is not None else ""
        base = {"workload": f"Embeddings, {per} sentence{'s' if per > 1 else ''}/request",
                "clients": phase["concurrency"], "server": phase["rate"],
                "unit": "sentences/s", "latency": latency, "cpu": _cpu(phase),
                "errors": phase["errors"], "note": note}
        b32 = raw.get(f"embeddings_b{max_batch}", {})
        out.append({**base, "raw": emb_raw, "raw_label": f"batch {max_batch}",
                    "ratio": ratio(phase["rate"], emb_raw), "note": note + _busy(b32)})
        if per == 1 and phase["concurrency"] == 1 and not math.isnan(emb_raw1):
            b1 = raw.get("embeddings_b1", {})
            out.append({**base, "raw": emb_raw1, "raw_label": "batch 1",
                        "ratio": ratio(phase["rate"], emb_raw1), "note": note + _busy(b1)})
    for phase in results["server"]["chat"]:
        c = phase["concurrency"]
        baseline = raw.get(f"generate_b{c}", {})
        latency = (f"TTFT {_num(phase['ttft_p50_ms'], 0)} / {_num(phase['ttft_p95_ms'], 0)} ms,"
                   f" ITL {_num(phase['itl_p50_ms'])} ms")
        raw_rate = baseline.get("rate", float("nan"))
        raw_step = baseline.get("ms_per_step")
        out.append({"workload": f"Chat stream, {phase['max_tokens']} tokens/request",
                    "clients": c, "server": phase["rate"], "unit": "tokens/s",
                    "raw": raw_rate, "raw_label": f"generate batch {c}" if baseline else "",
                    "ratio": ratio(phase["rate"], raw_rate), "latency": latency,
                    "cpu": _cpu(phase), "errors": phase["errors"],
                    "note": (f"raw {_num(raw_step)} ms/step" if raw_step else "")
                    + _busy(baseline)})
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    head = ("| Workload | Clients | hfserve | Raw in-process | hfserve / raw "
            "| Latency p50 / p95 | CPU % server / client / other | Errors | Notes |")
    lines = [head, "|---|---:|---:|---:|---:|---|---|---:|---|"]
    for r in table:
        unit = r["unit"].replace("sentences/s", "sent/s").replace("tokens/s", "tok/s")
        raw = f"{_num(r['raw'])} ({r['raw_label']})" if r["raw_label"] else "n/a"
        lines.append(f"| {r['workload']} | {r['clients']} | {_num(r['server'])} {unit} "
                     f"| {raw} | {_num(r['ratio'], 2)} | {r['latency']} | {r['cpu']} "
                     f"| {r['errors']} | {r['note']} |")
    return "\n".join(lines)
