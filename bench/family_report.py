"""The tables, targets and score checks of bench/families.py: rerank and classify rates of
hfserve beside the best raw engine and Infinity."""

from __future__ import annotations

import argparse

import numpy as np

from bench.report import _num
from bench.stats import ratio

FAMILIES = ("rerank", "classify")
NAN = float("nan")

ENGINES = {"torch": "torch", "openvino": "OpenVINO"}
WORKLOADS = {"rerank": ("Rerank, 1 query x {d} documents/request", "pairs/s"),
             "classify": ("Classify, 1 text/request", "texts/s")}


def raw_batch(args: argparse.Namespace, family: str, clients: int) -> int:
    per = args.documents if family == "rerank" else 1
    return min(clients * per, args.max_batch_size)


def best_raw(results: dict, family: str, batch: int) -> tuple[float, str]:
    found = [(raw[f"{family}_b{batch}"]["rate"], f"{label}, batch {batch}")
             for key, label in ENGINES.items()
             for raw in [results.get("raw", {}).get(key, {})] if f"{family}_b{batch}" in raw]
    return max(found, default=(NAN, ""))


def _run(server: dict, family: str, clients: int) -> dict | None:
    return next((r for r in server.get(family, []) if r["concurrency"] == clients), None)


def table(results: dict, args: argparse.Namespace) -> list[dict]:
    rows = []
    peer = results.get("infinity", {})
    for family in FAMILIES:
        workload, unit = WORKLOADS[family]
        for c in args.clients:
            mine = _run(results["server"], family, c) or {}
            theirs = _run(peer, family, c)
            raw = best_raw(results, family, raw_batch(args, family, c))
            notes = [f"{who}: {r['errors']} errors" for who, r in (("hfserve", mine),
                                                                    ("Infinity", theirs))
                     if r and r.get("errors")]
            # A window shorter than one round of requests sees none finish: no rate.
            notes += [f"{who}: no request finished in the window" for who, r in
                      (("hfserve", mine), ("Infinity", theirs)) if r and not r["requests"]]
            notes += [f"{who}: other load {r['other_cpu_pct']:.0f}%"
                      for who, r in (("hfserve", mine), ("Infinity", theirs))
                      if r and r.get("other_cpu_pct", 0) >= 10]
            rate = mine["rate"] if mine.get("requests") else NAN
            peer_rate = theirs["rate"] if theirs and theirs["requests"] else NAN
            rows.append({"family": family, "workload": workload.format(d=args.documents),
                         "metric": unit, "clients": c, "hfserve": rate, "raw": raw[0],
                         "raw_label": raw[1], "ratio_raw": ratio(rate, raw[0]),
                         "infinity": peer_rate,
                         "infinity_why": "" if theirs else ("failed" if peer.get("error")
                                                            else "not run"),
                         "ratio_infinity": ratio(rate, peer_rate),
                         "mean_batch": mine.get("mean_batch_size"),
                         "note": "; ".join(notes)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| Workload | Clients | Metric | hfserve | Best raw in-process | hfserve / raw "
             "| Infinity | hfserve / Infinity | hfserve mean batch | Notes |",
             "|---|---:|---|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        raw = f"{_num(r['raw'])} ({r['raw_label']})" if r["raw_label"] else "n/a"
        peer = r["infinity_why"] or _num(r["infinity"])
        lines.append(f"| {r['workload']} | {r['clients']} | {r['metric']} | "
                     f"{_num(r['hfserve'])} | {raw} | {_num(r['ratio_raw'], 2)} | {peer} "
                     f"| {_num(r['ratio_infinity'], 2)} | {_num(r['mean_batch'])} "
                     f"| {r['note']} |")
    return "\n".join(lines)


def clients(count: int) -> str:
    return f"{count} client{'s' if count != 1 else ''}"


def targets(rows: list[dict], args: argparse.Namespace) -> list[dict]:
    """hfserve >= 2x Infinity on every row; >= 85% of the best raw figure at the most
    clients."""
    most = max(args.clients)
    spec = [(f"{r['workload']}, {clients(r['clients'])}: >= 2x Infinity", r, "infinity", 2.0)
            for r in rows]
    spec += [(f"{r['workload']}, {clients(most)}: >= 85% of the best raw in-process", r,
              "raw", 0.85) for r in rows if r["clients"] == most]
    out = []
    for name, row, ref, threshold in spec:
        value = ratio(row["hfserve"], row[ref])
        out.append({"target": name, "hfserve": row["hfserve"], "reference": row[ref],
                    "op": ">=", "ratio": value, "threshold": threshold,
                    "met": None if value != value else value >= threshold})
    return out


def details(results: dict) -> str:
    lines = ["| Server | Run | Clients | Rate | Latency p50 / p95 ms "
             "| CPU % server / client / other | Errors |",
             "|---|---|---:|---:|---|---|---:|"]
    for name, server in (("hfserve", results["server"]),
                         ("Infinity", results.get("infinity", {}))):
        for family in FAMILIES:
            for r in server.get(family, []):
                lines.append(
                    f"| {name} | {family} x{r['per_request']} | {r['concurrency']} "
                    f"| {_num(r['rate'])} {r['unit']} | {_num(r['latency_p50_ms'])} / "
                    f"{_num(r['latency_p95_ms'])} | {_num(r.get('server_cpu_pct'), 0)} / "
                    f"{_num(r['client_cpu_pct'], 0)} / {_num(r['other_cpu_pct'], 0)} "
                    f"| {r['errors']} |")
    return "\n".join(lines)


def agreement(results: dict) -> list[str]:
    """Largest difference of each server's and each raw engine's scores from raw torch's."""
    ref = results.get("raw", {}).get("torch", {})
    if "sample_rerank" not in ref:
        return []
    want = {"rerank": np.asarray(ref["sample_rerank"]),
            "classify": np.asarray(ref["sample_classify"])}
    got = {"hfserve": results["server"].get("samples"),
           "Infinity": results.get("infinity", {}).get("samples"),
           "raw OpenVINO": {"rerank": results["raw"].get("openvino", {}).get("sample_rerank"),
                            "classify": results["raw"].get("openvino", {}).get(
                                "sample_classify")}}
    out = []
    for who, sample in got.items():
        for family in FAMILIES:
            if sample and sample.get(family) is not None:
                diff = float(np.nanmax(np.abs(np.asarray(sample[family]) - want[family])))
                out.append(f"{family} scores, {who} vs raw torch: max |difference| {diff:.2e}")
    return out
