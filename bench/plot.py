"""Throughput against clients for hfserve and the peers (and the best raw in-process rate),
embeddings and chat side by side, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import best_raw_chat, best_raw_embed


def _series(runs: list[dict], per: int | None = None) -> tuple[list[int], list[float]]:
    pts = sorted((r["concurrency"], r["rate"]) for r in runs
                 if per is None or r.get("per_request") == per)
    return [c for c, _ in pts], [v for _, v in pts]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = results.get("peers", {})
    max_batch = results["config"]["max_batch_size"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        (axes[0], "embeddings", 1, "Embeddings, 1 sentence/request", "sentences/s",
         lambda c: best_raw_embed(results, min(c, max_batch))[0], ["infinity"]),
        (axes[1], "chat", None, f"Chat, {results['config']['max_tokens']} tokens/request",
         "output tokens/s", lambda c: best_raw_chat(results, c)[0],
         ["transformers-serve", "transformers-serve-cb"]),
    ]
    for ax, kind, per, title, unit, raw, keys in panels:
        x, y = _series(results["server"][kind], per)
        ax.plot(x, y, "o-", lw=2, label="hfserve")
        raw_y = [raw(c) for c in x]
        if any(v == v for v in raw_y):
            ax.plot(x, raw_y, "k--", marker="x", lw=1, label="best raw in-process")
        for key in keys:
            peer = peers.get(key, {})
            px, py = _series(peer.get(kind, []), per)
            if px:
                ax.plot(px, py, "s-", label=peer.get("label", key))
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(c) for c in x])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    machine = results.get("machine", {})
    fig.suptitle(f"hfserve vs peers, {machine.get('cores', '?')} CPU cores "
                 f"({machine.get('cpu', '')})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
