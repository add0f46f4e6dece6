"""Other servers to compare hfserve with, each installed in its own virtual environment under
.cache/bench-venvs (created on first use, pip with the project's constraints so torch stays
the local CPU build) and run as a subprocess on a free local port.

- ``transformers serve`` (transformers[serving]) for chat, on SmolLM2 written out of the GGUF
  file as a normal HF folder in bfloat16, the published checkpoint's precision (its
  ``--dtype auto`` default then loads it in bfloat16), since the benchmark feeds it a local
  folder.
- Infinity (infinity-emb, torch engine, its defaults) for embeddings, on the MiniLM folder
  (or a CLIP folder: bench/media.py), and for reranking and classification
  (bench/families.py) on classifiers built from it.

Each peer says the precision and threads it runs at; both use torch's default intra-op
threads (the CPUs the process may use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.server import CHAT_GGUF, EMBED_DIR, EMBED_NAME, ROOT, ManagedProcess

VENVS = ROOT / ".cache" / "bench-venvs"
CONSTRAINTS = ROOT / "constraints.txt"
SMOL_HF = ROOT / ".cache" / "bench-models" / "SmolLM2-135M-Instruct-bf16"


class PeerUnavailable(RuntimeError):
    """A peer could not be installed, prepared or started; the message says why."""


def _tail(text: str, lines: int = 15) -> str:
    keep = [line for line in text.splitlines() if "is ignored: it is neither" not in line]
    return "\n".join(keep[-lines:])


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """The bin folder of venv ``name`` with ``requirements`` installed (once)."""
    folder = VENVS / name
    marker = folder / ".bench-requirements.json"
    if marker.is_file() and json.loads(marker.read_text()) == requirements:
        return folder / "bin"
    print(f"  installing {' '.join(requirements)} into {folder} (first run only)", flush=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(folder)],
             [str(folder / "bin" / "python"), "-m", "pip", "install", "-q",
              "--disable-pip-version-check", "-c", str(CONSTRAINTS), *requirements]]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise PeerUnavailable(f"`{' '.join(cmd[-len(requirements) - 1:])}` failed "
                                  f"(exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}")
    marker.write_text(json.dumps(requirements))
    return folder / "bin"


def version(bin_dir: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


# Prints the chat-template token ids of each prompt (argv[2], JSON) with the tokenizer in
# folder argv[1], in whichever environment runs it.
_IDS_SCRIPT = """
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
out = []
for p in json.loads(sys.argv[2]):
    text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                   add_generation_prompt=True)
    out.append(tok(text, add_special_tokens=False)["input_ids"])
print(json.dumps(out))
"""


def tokenizer_matches(python: Path, folder: Path, prompts: list[str]) -> bool:
    """Does the tokenizer saved in ``folder``, loaded by ``python``, give the same chat ids as
    the GGUF tokenizer hfserve uses?"""
    from bench.raw import chat_ids, gguf_tokenizer

    tok = gguf_tokenizer()
    expected = [chat_ids(tok, p) for p in prompts]
    done = subprocess.run([str(python), "-c", _IDS_SCRIPT, str(folder), json.dumps(prompts)],
                          capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        raise PeerUnavailable(f"tokenizer check failed:\n{_tail(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1]) == expected


def write_smol_hf(prompts: list[str]) -> Path:
    """SmolLM2 from the GGUF file as a normal HF folder (bfloat16 safetensors, as the published
    checkpoint, + tokenizer).

    ``save_pretrained`` of the GGUF-loaded tokenizer writes a tokenizer that splits the chat
    template differently on this transformers version, so the fast tokenizer inside it is
    saved as a plain PreTrainedTokenizerFast with the chat template, and the result is
    checked against the GGUF tokenizer."""
    if (SMOL_HF / ".complete").is_file():
        return SMOL_HF
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from bench.raw import gguf_tokenizer

    print(f"  writing {SMOL_HF} from {CHAT_GGUF.name} (first run only)", flush=True)
    SMOL_HF.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(str(CHAT_GGUF.parent), gguf_file=CHAT_GGUF.name,
                                                 dtype=torch.bfloat16)
    model.save_pretrained(SMOL_HF)
    tok = gguf_tokenizer()
    eos = tok.convert_ids_to_tokens(model.config.eos_token_id)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer,
                                   bos_token=tok.bos_token, eos_token=eos,
                                   unk_token=tok.unk_token, pad_token=eos)
    fast.chat_template = tok.chat_template
    fast.save_pretrained(SMOL_HF)
    del model
    if not tokenizer_matches(Path(sys.executable), SMOL_HF, prompts):
        raise PeerUnavailable(f"the tokenizer written to {SMOL_HF} does not tokenize the chat "
                              "template like the GGUF tokenizer")
    (SMOL_HF / ".complete").write_text("ok\n")
    return SMOL_HF


class TransformersServe(ManagedProcess):
    """``transformers serve`` with SmolLM2 preloaded (bfloat16 weights, eager PyTorch)."""

    name = "transformers serve"
    ready_path = "/health"
    model_name = str(SMOL_HF)       # a local folder is its own model id
    # requests: the CLI imports it (transformers 5.17) though the serving extra does not list it.
    requirements = ["transformers[serving]", "requests", "torch==2.13.0"]

    def __init__(self, log_path: Path, continuous_batching: bool, prompts: list[str]) -> None:
        super().__init__(log_path)
        self.bin = ensure_venv("transformers-serve", self.requirements)
        self.version = version(self.bin, "transformers")
        self.folder = write_smol_hf(prompts)
        if not tokenizer_matches(self.bin / "python", self.folder, prompts[:8]):
            raise PeerUnavailable(f"transformers {self.version} tokenizes {self.folder}'s chat "
                                  "template differently from the GGUF tokenizer")
        self.flags = ["--continuous-batching"] if continuous_batching else []
        self.label = " ".join(["transformers serve", *self.flags])
        self.precision = "bfloat16 (the checkpoint's; --dtype auto)"
        self.threads = f"torch default ({len(os.sched_getaffinity(0))})"

    def command(self) -> list[str]:
        return [str(self.bin / "transformers"), "serve", self.model_name, *self.flags,
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]

    @staticmethod
    def chat_fields(max_tokens: int) -> dict:
        """Request fields that make it produce exactly ``max_tokens`` tokens: it has no
        ``ignore_eos`` (unknown fields are rejected), but takes a generation config."""
        return {"generation_config": json.dumps({"min_new_tokens": max_tokens,
                                                 "max_new_tokens": max_tokens,
                                                 "do_sample": False})}


class Infinity(ManagedProcess):
    """Infinity's v2 server, torch engine on the CPU, result cache off, OpenAI routes under
    /v1; MiniLM by default, or ``models`` ((folder, served name) pairs) side by side. It
    picks each model's engine from its config: a sequence classifier with one label is a
    reranker (/v1/rerank), with more a classifier (/v1/classify), anything else an
    embedder (a CLIP folder: its image embeddings, with Infinity's ``modality``
    field; ``images`` then gives it the aiohttp it reads images with)."""

    name = "Infinity"
    ready_path = "/health"
    model_name = EMBED_NAME
    requirements = ["infinity-emb[server,torch]", "torch==2.13.0"]

    def __init__(self, log_path: Path, batch_size: int,
                 models: list[tuple[Path, str]] | None = None,
                 images: bool = False) -> None:
        super().__init__(log_path)
        # Infinity reads every image input, data URLs too, through aiohttp, which none of
        # its extras installs (its vision extra brings torchvision and colpali-engine
        # instead); a venv of its own, so that the text one stays as it was measured.
        self.bin = ensure_venv("infinity-images", [*self.requirements, "aiohttp"]) \
            if images else ensure_venv("infinity", self.requirements)
        self.version = version(self.bin, "infinity-emb")
        self.models = models or [(EMBED_DIR, EMBED_NAME)]
        self.model_name = self.models[0][1]
        self.flags = ["--engine", "torch", "--device", "cpu", "--batch-size", str(batch_size),
                      "--no-vector-disk-cache"]
        self.label = "Infinity"
        self.precision = "float32 (--dtype auto on the CPU)"
        self.threads = f"torch default ({len(os.sched_getaffinity(0))})"

    def command(self) -> list[str]:
        # Repeated options pair up by position; the others apply to every model.
        named = [arg for folder, name in self.models
                 for arg in ("--model-id", str(folder), "--served-model-name", name)]
        return [str(self.bin / "infinity_emb"), "v2", *named, *self.flags,
                "--url-prefix", "/v1", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning"]

    def env(self) -> dict[str, str]:
        return {**super().env(), "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
