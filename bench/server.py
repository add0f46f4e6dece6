"""Run servers as subprocesses on free local ports, for benchmarks: hfserve with a generated
config, and any other server (the peers) from a command line.

``ManagedProcess`` is a context manager: the server is always stopped on exit (SIGINT, then
SIGTERM and SIGKILL to its whole process group), even when the benchmark fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
CACHE_DIR = ROOT / ".cache" / "hfserve"      # hfserve's exports (OpenVINO IR), reused
EMBED_NAME = "all-MiniLM-L6-v2"
CHAT_NAME = "SmolLM2-135M-Instruct"
EMBED_DIR = MODELS / "all-MiniLM-L6-v2"
CHAT_GGUF = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_CONFIG = ROOT / "examples" / "demo.yaml"      # what `make serve` serves


@dataclass
class ServerOptions:
    embed_threads: int = 1
    chat_threads: int = 1
    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    max_concurrent: int = 8
    backend: str = "auto"            # auto, torch, openvino, onnxruntime (both models)
    dtype: str | None = None         # None: hfserve's default for the chosen device
    log_level: str = "warning"
    models: list[dict] | None = None  # model entries served instead of the two above
    extra: dict | None = None          # other config keys (groups, ...)
    chat_extra: dict | None = None     # more settings of the chat model
    config: Path | None = None         # a config file served as it is (the rest unused)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_dict(opts: ServerOptions) -> dict:
    if opts.models is not None:
        return {"cache_dir": str(CACHE_DIR), "models": opts.models, **(opts.extra or {})}
    common = {"backend": opts.backend, **({"dtype": opts.dtype} if opts.dtype else {})}
    return {"cache_dir": str(CACHE_DIR), "models": [
        {"name": EMBED_NAME, "source": str(EMBED_DIR), "threads": opts.embed_threads,
         "max_batch_size": opts.max_batch_size, "max_wait_ms": opts.max_wait_ms, **common},
        {"name": CHAT_NAME, "source": str(CHAT_GGUF), "threads": opts.chat_threads,
         "max_concurrent": opts.max_concurrent, **common, **(opts.chat_extra or {})},
    ]}


def hfserve_command() -> list[str]:
    script = Path(sys.executable).parent / "hfserve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hfserve"]


class ManagedProcess:
    """A server started from ``command()`` on ``self.port``, ready when ``ready_path``
    answers 200."""

    name = "server"
    ready_path = "/health"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-server-")
        self.tmp = Path(self._tmp.name)
        self.startup_s = float("nan")
        self.exit_code: int | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    def __enter__(self) -> ManagedProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 300.0) -> None:
        cmd = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                     cwd=ROOT, start_new_session=True)
        log.close()
        self._wait_ready(started, timeout)
        self.startup_s = time.monotonic() - started

    def _wait_ready(self, started: float, timeout: float) -> None:
        assert self.proc is not None
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                       f"before ready:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.base_url}{self.ready_path}").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0),
                                  (signal.SIGKILL, 5.0)):
                    try:
                        os.killpg(proc.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            self.exit_code = proc.returncode
        self._tmp.cleanup()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> list[str]:
        """Lines of the server log that look like errors or warnings."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        keys = ("ERROR", "Traceback", "CRITICAL", "WARNING", "Warning", "Exception",
                "deprecated")
        return [line for line in text.splitlines() if any(k in line for k in keys)]


class ServerProcess(ManagedProcess):
    """hfserve serving both benchmark models (or ``opts.models``) from a generated YAML
    config."""

    name = "hfserve"
    ready_path = "/ready"

    def __init__(self, opts: ServerOptions, log_path: Path) -> None:
        super().__init__(log_path)
        self.opts = opts
        self.config_path = self.tmp / "bench.yaml"

    def command(self) -> list[str]:
        if self.opts.config is not None:
            config = yaml.safe_load(self.opts.config.read_text())
            sources = [ROOT / m["source"] for m in config["models"]]
            self.config_path = self.opts.config
        else:
            sources = ([ROOT / m["source"] for m in self.opts.models]
                       if self.opts.models is not None else [EMBED_DIR, CHAT_GGUF])
            self.config_path.write_text(yaml.safe_dump(config_dict(self.opts),
                                                       sort_keys=False))
        for path in sources:
            if not path.exists():
                raise SystemExit(f"missing model {path}; run `make models` first")
        return [*hfserve_command(), "serve", "--config", str(self.config_path),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", self.opts.log_level]
