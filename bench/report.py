"""Turn benchmark results into the comparison table, the target checks and a details table."""

from __future__ import annotations

import math
from typing import Any

from bench.stats import ratio

NAN = float("nan")
# Peer columns: A and B, per workload kind.
PEERS = {"embeddings": ("infinity", None),
         "chat": ("transformers-serve", "transformers-serve-cb")}


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _best(candidates: list[tuple[dict | None, str]]) -> tuple[float, str]:
    """Highest rate among raw results, with a label naming engine and batch/concurrency."""
    found = [(r["rate"], label) for r, label in candidates if r and r.get("rate") is not None]
    return max(found, default=(NAN, ""))


def best_raw_embed(results: dict, batch: int) -> tuple[float, str]:
    key = f"embeddings_b{batch}"
    return _best([(results.get("raw", {}).get(key), f"torch, batch {batch}"),
                  (results.get("raw_openvino", {}).get(key), f"OpenVINO, batch {batch}")])


def best_raw_chat(results: dict, clients: int) -> tuple[float, str]:
    return _best([(results.get("raw", {}).get(f"generate_b{clients}"),
                   f"torch generate, batch {clients}"),
                  (results.get("raw_openvino", {}).get(f"chat_c{clients}"),
                   _cb_label(clients))])


def _cb_label(clients: int) -> str:
    return f"OpenVINO CB, {clients} request{'s' if clients > 1 else ''}"


def _peer_run(results: dict, key: str | None, kind: str, clients: int,
              per: int | None = None) -> tuple[dict | None, str]:
    """A peer's run of ``kind`` at ``clients`` (and ``per``), or None with the reason."""
    if key is None:
        return None, ""
    peer = results.get("peers", {}).get(key)
    if peer is None:
        return None, "not run"
    for run in peer.get(kind, []):
        if run["concurrency"] == clients and run.get("per_request", per) == per:
            return run, ""
    return None, "failed" if peer.get("error") else "not run"


def setup_label(server: dict) -> str:
    """'' for the headline phase (`make serve`'s defaults); the tuned settings otherwise."""
    tuned = server.get("tuned")
    return ", ".join(f"{k}={v}" for k, v in tuned.items()) if tuned else ""


def servers(results: dict[str, Any]) -> list[tuple[str, dict]]:
    """hfserve's phases: the headline one, then each tuned one, with their labels."""
    return [("", results["server"])] + [(setup_label(t), t) for t in results.get("tuned", [])]


def _row(workload: str, metric: str, clients: int, mine: float, raw: tuple[float, str],
         peers: list[tuple[float, str]], note: str, digits: int = 1,
         setup: str = "") -> dict[str, Any]:
    if setup:
        workload = f"{workload} [hfserve tuned: {setup}]"
    row = {"workload": workload, "setup": setup, "metric": metric, "clients": clients,
           "hfserve": mine,
           "raw": raw[0], "raw_label": raw[1], "ratio_raw": ratio(mine, raw[0]),
           "note": note, "digits": digits}
    for name, (value, why) in zip("ab", peers, strict=True):
        row[f"peer_{name}"], row[f"peer_{name}_why"] = value, why
        row[f"ratio_{name}"] = ratio(mine, value)
    return row


def _notes(run: dict, peers: list[tuple[dict | None, str]]) -> str:
    """Errors and other processes' CPU load (>= 10 % of a core), per server."""
    parts = []
    for name, r in [("hfserve", run)] + [(n, p) for n, (p, _) in zip("AB", peers, strict=True)]:
        if r and r["errors"]:
            parts.append(f"{name}: {r['errors']} errors")
        if r and (r.get("other_cpu_pct") or 0.0) >= 10:
            parts.append(f"{name}: other load {r['other_cpu_pct']:.0f}%")
    return "; ".join(parts)


def comparison(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per workload, concurrency and metric: hfserve, best raw, peers, ratios; the
    headline phase's rows first, each tuned phase's after them, labelled."""
    return [row for setup, server in servers(results)
            for row in _comparison(results, server, setup)]


def _comparison(results: dict[str, Any], server: dict, setup: str) -> list[dict[str, Any]]:
    out = []
    max_batch = results["config"]["max_batch_size"]
    for run in server["embeddings"]:
        c, per = run["concurrency"], run["per_request"]
        peers = [_peer_run(results, key, "embeddings", c, per) for key in PEERS["embeddings"]]
        out.append(_row(f"Embeddings, {per} sentence{'s' if per > 1 else ''}/request",
                        "sentences/s", c, run["rate"],
                        best_raw_embed(results, min(c * per, max_batch)),
                        [((p or {}).get("rate", NAN), why) for p, why in peers],
                        _notes(run, peers), setup=setup))
    ov = results.get("raw_openvino", {})
    for run in server["chat"]:
        c = run["concurrency"]
        peers = [_peer_run(results, key, "chat", c) for key in PEERS["chat"]]
        raw_c = ov.get(f"chat_c{c}", {})
        note = _notes(run, peers)
        workload = f"Chat stream, {run['max_tokens']} tokens/request"
        out.append(_row(workload, "output tokens/s", c, run["rate"], best_raw_chat(results, c),
                        [((p or {}).get("rate", NAN), why) for p, why in peers], note,
                        setup=setup))
        for key, metric in (("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p95_ms", "TTFT p95 ms"),
                            ("itl_p50_ms", "ITL p50 ms")):
            raw = (raw_c.get(key, NAN), _cb_label(c) if raw_c else "")
            out.append(_row(workload, metric, c, run[key], raw,
                            [((p or {}).get(key, NAN), why) for p, why in peers], "", 0,
                            setup=setup))
    return out


def _cell(value: float, why: str, digits: int) -> str:
    return why if why else _num(value, digits)


def markdown(table: list[dict[str, Any]]) -> str:
    head = ("| Workload | Clients | Metric | hfserve | Best raw in-process | hfserve / raw "
            "| Peer A | hfserve / A | Peer B | hfserve / B | Notes |")
    lines = [head, "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in table:
        d = r["digits"]
        raw = f"{_num(r['raw'], d)} ({r['raw_label']})" if r["raw_label"] else "n/a"
        lines.append(
            f"| {r['workload']} | {r['clients']} | {r['metric']} | {_num(r['hfserve'], d)} "
            f"| {raw} | {_num(r['ratio_raw'], 2)} "
            f"| {_cell(r['peer_a'], r['peer_a_why'], d)} | {_num(r['ratio_a'], 2)} "
            f"| {_cell(r['peer_b'], r['peer_b_why'], d)} | {_num(r['ratio_b'], 2)} "
            f"| {r['note']} |")
    return "\n".join(lines)


def _find(table: list[dict], metric: str, clients: int, workload_part: str,
          setup: str = "") -> dict:
    for r in table:
        if (r["metric"] == metric and r["clients"] == clients
                and workload_part in r["workload"] and r.get("setup", "") == setup):
            return r
    return {}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets, each with its measured ratio and whether it was met."""
    table = results["table"]
    batch = results["config"]["max_batch_size"]
    spec = [
        ("Embeddings, 1 sentence/request, 64 clients: >= 3x Infinity",
         _find(table, "sentences/s", 64, "1 sentence/"), "peer_a", 3.0, ">="),
        (f"Embeddings, {batch} sentences/request, 16 clients: >= 85% of the best raw backend",
         _find(table, "sentences/s", 16, f"{batch} sentences"), "raw", 0.85, ">="),
        ("Chat, 8 clients: >= 2x transformers serve --continuous-batching",
         _find(table, "output tokens/s", 8, "Chat"), "peer_b", 2.0, ">="),
        ("Chat, 8 clients: >= 85% of the best raw engine",
         _find(table, "output tokens/s", 8, "Chat"), "raw", 0.85, ">="),
        ("Chat, 1 client: >= 1.5x transformers serve",
         _find(table, "output tokens/s", 1, "Chat"), "peer_a", 1.5, ">="),
    ]
    for setup, _ in servers(results)[1:]:
        spec.append((f"Chat, 8 clients, hfserve tuned ({setup}): >= 2.5x transformers serve "
                     "--continuous-batching",
                     _find(table, "output tokens/s", 8, "Chat", setup), "peer_b", 2.5, ">="))
    out = []
    for name, row, ref, threshold, op in spec:
        mine, other = row.get("hfserve", NAN), row.get(ref, NAN)
        out.append({"target": name, "hfserve": mine, "reference": other, "op": op,
                    "ratio": ratio(mine, other), "threshold": threshold})
    ttft = _find(table, "TTFT p50 ms", 1, "Chat").get("hfserve", NAN)
    prefill = results.get("raw_openvino", {}).get("prefill_ms", NAN)
    out.append({"target": "Chat, 1 client: TTFT p50 <= 1.2x raw prefill time",
                "hfserve": ttft, "reference": prefill, "op": "<=",
                "ratio": ratio(ttft, prefill), "threshold": 1.2})
    for t in out:
        r = t["ratio"]
        t["met"] = None if math.isnan(r) else (r >= t["threshold"] if t["op"] == ">="
                                              else r <= t["threshold"])
    return out


def targets_markdown(items: list[dict[str, Any]]) -> str:
    lines = ["| Target | hfserve | Reference | Ratio | Met |", "|---|---:|---:|---:|---|"]
    for t in items:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {_num(t['hfserve'])} | {_num(t['reference'])} "
                     f"| {_num(t['ratio'], 2)} | {met} |")
    return "\n".join(lines)


def _detail_rows(name: str, server: dict) -> list[str]:
    rows = []
    for run in server.get("embeddings", []) + server.get("chat", []):
        chat = run["unit"] == "tokens/s"
        per = run.get("per_request")
        latency = (f"TTFT {_num(run['ttft_p50_ms'], 0)} / {_num(run['ttft_p95_ms'], 0)}, ITL "
                   f"{_num(run['itl_p50_ms'])} / max {_num(run['itl_max_ms'], 0)}" if chat
                   else f"{_num(run['latency_p50_ms'])} / {_num(run['latency_p95_ms'])}")
        notes = [f"mean batch {_num(run['mean_batch_size'])}" if run.get("mean_batch_size")
                 else "",
                 f"{_num(run['tokens_per_chunk'], 2)} tokens/chunk" if chat else "",
                 f"{run['cancelled_at_end']} cut off at end" if run["cancelled_at_end"] else ""]
        rows.append(f"| {name} | {'chat' if chat else f'embeddings x{per}'} "
                    f"| {run['concurrency']} | {run.get('client', 'python')} "
                    f"| {_num(run['rate'])} {run['unit']} | {latency} "
                    f"| {_num(run.get('server_cpu_pct'), 0)} / {_num(run['client_cpu_pct'], 0)}"
                    f" / {_num(run['other_cpu_pct'], 0)} | {run['errors']} "
                    f"| {'; '.join(n for n in notes if n)} |")
    return rows


def details_markdown(results: dict[str, Any]) -> str:
    lines = ["| Server | Run | Clients | Load generator | Rate | Latency p50 / p95 ms "
             "| CPU % server / client / other | Errors | Notes |",
             "|---|---|---:|---|---:|---|---|---:|---|"]
    setups = []
    for setup, server in servers(results):
        name = f"hfserve [{setup}]" if setup else "hfserve"
        lines += _detail_rows(name, server)
        models = "; ".join(f"{m['id']}: {m.get('backend')}, {m.get('dtype')}, threads "
                           f"{m.get('threads')}" for m in server.get("models", []))
        setups.append(f"{name} ({server.get('setup', '')}): {models}")
    failed = []
    for peer in results.get("peers", {}).values():
        if "label" in peer:
            lines += _detail_rows(peer["label"], peer)
            setups.append(f"{peer['label']} {peer.get('version', '')}: "
                          f"{peer.get('precision', '?')}, threads {peer.get('threads', '?')}")
        if peer.get("error"):
            failed.append(f"{peer.get('label', '?')}: {peer['error'].splitlines()[0][:300]}")
    return "\n".join(lines + [""] + [f"- {line}" for line in setups]
                     + [f"\nnot measured: {f}" for f in failed])


def log_findings(name: str, server: dict[str, Any]) -> list[str]:
    """A server's exit code and the first of the warning/error lines of its log, as lines
    to print."""
    problems = server.get("log_problems", [])
    return [f"{name}: exit code {server.get('exit_code')}, "
            f"{len(problems)} warning/error log lines",
            *(f"   {line[:200]}" for line in problems[:5])]


def checks(results: dict[str, Any]) -> list[str]:
    """Consistency checks and log findings, as lines to print."""
    out = []
    for key, name in (("raw", "torch"), ("raw_openvino", "OpenVINO")):
        raw = results.get(key, {})
        if raw.get("embedding_min_cosine") is not None:
            out.append(f"embeddings hfserve vs raw {name}: min cosine "
                       f"{raw['embedding_min_cosine']:.6f}")
        if "chat_text_identical" in raw:
            out.append(f"greedy chat text hfserve == raw {name}: {raw['chat_text_identical']}")
    logs = {"hfserve": results["server"], **results.get("peers", {})}
    for name, server in logs.items():
        out += log_findings(name, server)
    return out
