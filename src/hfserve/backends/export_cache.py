"""Where exported copies of a model live (OpenVINO IR, ONNX, a GGUF file's dequantized weights
and rebuilt tokenizer): one folder per source, backend and options, keyed by the source
files' identity so an edited model is exported again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hfserve.registry.identity import source_identity
from hfserve.types import ModelSpec

log = logging.getLogger(__name__)
T = TypeVar("T")


def export_dir(cache_dir: Path, spec: ModelSpec, backend: str, **options: Any) -> Path:
    """A stable folder for this model exported to ``backend`` with ``options``."""
    key = json.dumps([str(spec.path), spec.gguf_file, source_identity(spec), backend, options],
                     sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.gguf_file or spec.path.name)[:48]
    return Path(cache_dir) / backend / f"{slug}-{digest}"


def run_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """Run an export in a fresh process: an exporter that crashes (tracing and graph
    conversion can die on a signal) becomes a load failure the runtime falls back from,
    not the end of the server; the memory it used is returned when it exits."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_quietly, fn, *args).result()
        except BrokenProcessPool as exc:
            raise RuntimeError("the export process died; see the server log") from exc


def _quietly(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` without warnings: an export's warnings (values the tracer records as
    constants, deprecations inside torch and optimum, the ONNX exporter skipping torchvision's
    operators) concern the exporters' own code, not the user's model, and took dozens of
    lines of the server's log. An export that fails still fails with its error."""
    import logging
    import warnings

    import torch  # first: importing it sets the levels of its loggers

    warnings.simplefilter("ignore")
    logging.getLogger(torch.onnx.__name__).setLevel(logging.ERROR)
    return fn(*args)


def is_complete(folder: Path) -> bool:
    return (folder / ".complete").is_file()


def mark_complete(folder: Path) -> None:
    (folder / ".complete").write_text("ok\n")


def publish(folder: Path, write: Callable[[Path], Any],
            check: Callable[[Path], bool] = lambda staging: True) -> bool:
    """Fill ``folder`` with ``write(staging)``, written aside and renamed into place: two
    processes may be building the same folder (the server and a model process), and a
    reader must never see half of one. What ``check`` rejects is not kept; a read-only
    cache, or losing the race, leaves the folder to the other writer. A cache is only ever
    a shortcut: whatever fails here is logged, and the caller goes on with what it has.
    True when published."""
    staging = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        write(staging)
        if check(staging):
            mark_complete(staging)
            staging.rename(folder)
            return True
    except Exception as exc:  # noqa: BLE001 - see above
        if not folder.exists():      # losing the race is no news
            log.warning("not cached in %s: %s: %s", folder, type(exc).__name__, exc)
    shutil.rmtree(staging, ignore_errors=True)
    return False


def cached_or_built(folder: Path, read: Callable[[Path], T], build: Callable[[], T],
                    write: Callable[[T, Path], Any],
                    check: Callable[[T, Path], bool] = lambda made, staging: True) -> T:
    """``read(folder)`` where a complete copy is cached there (a damaged one is dropped);
    else ``build()``, and the result written to the cache by ``write(made, staging)``,
    kept where ``check(made, staging)`` accepts it (see ``publish``)."""
    if is_complete(folder):
        try:
            return read(folder)
        except Exception as exc:  # a damaged cache: build it again
            log.warning("cached %s unusable (%s: %s); building it again", folder,
                        type(exc).__name__, exc)
            shutil.rmtree(folder, ignore_errors=True)
    log.info("building %s: once, then read from this cache", folder)
    made = build()
    publish(folder, lambda staging: write(made, staging),
            lambda staging: check(made, staging))
    return made
