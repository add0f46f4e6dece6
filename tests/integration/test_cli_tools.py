"""The operator's commands against the shared demo server: ``hfserve bench --plot`` runs a
real load and draws it, and ``hfserve doctor`` on the demo models understands both."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import CHAT, EMBED, MINILM, SMOL


def _hfserve(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hfserve", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize(("task", "model"), [("embeddings", EMBED), ("chat", CHAT)])
def test_bench_plot_draws_a_real_run(server, tmp_path, task, model) -> None:
    from PIL import Image

    out = tmp_path / f"{task}.png"
    done = _hfserve("bench", "--url", server["base"], "--model", model, "--task", task,
                    "--clients", "2", "--seconds", "2", "--max-tokens", "8", "--plot",
                    str(out), "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["requests"] >= 2 and found["errors"] == 0
    assert found["tokens_per_s"] > 0 and found["latency_ms"]["p50"] > 0
    if task == "chat":
        assert found["ttft_ms"]["p50"] is not None
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (800, 600)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert len(sidecar["samples"]) == found["requests"]


def test_bench_against_an_unknown_model_fails(server) -> None:
    done = _hfserve("bench", "--url", server["base"], "--model", "no-such-model", "--task",
                    "embeddings", "--clients", "1", "--seconds", "1", "--json")
    assert done.returncode == 1
    found = json.loads(done.stdout)
    assert found["errors"] == found["requests"] >= 1


def test_doctor_understands_the_demo_models(tmp_path) -> None:
    done = _hfserve("doctor", "--json", "--cache-dir", str(tmp_path), str(MINILM), str(SMOL))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    tasks = {m["id"]: m["task"] for m in found["models"]}
    assert tasks == {"all-MiniLM-L6-v2": "embedding",
                     "SmolLM2-135M-Instruct.Q4_1": "text-generation"}
