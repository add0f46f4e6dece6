"""Command line: ``hfserve serve MODEL...``, ``hfserve mcp MODEL...`` (MCP over stdio),
``hfserve hardware``, ``hfserve models``, and ``hfserve ps | load ID | unload ID`` against
a running server.

Flags are generated from the Settings class, so the CLI, ``HFSERVE_*`` variables, the config
file and ``--help`` never drift apart. Only flags given on the command line override the
other sources."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic.fields import FieldInfo

from hfserve import __version__, remote
from hfserve.config import ModelConfig, Settings

SKIP = {"models", "config", "keys"}   # lists of entries: config file or environment


def _scalar(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help=Settings.model_fields["config"].description)
    for name, field in Settings.model_fields.items():
        if name in SKIP:
            continue
        flag = "--" + name.replace("_", "-")
        kind = _scalar(field.annotation)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=_help(field))
        elif get_origin(kind) is dict:
            parser.add_argument(flag, type=json.loads, default=argparse.SUPPRESS,
                                help=_help(field) + " (JSON)")
        elif get_origin(kind) is list:
            parser.add_argument(flag, action="append", type=_scalar(get_args(kind)[0]),
                                default=argparse.SUPPRESS, help=_help(field))
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=_help(field))
    parser.add_argument("--no-preload", dest="preload", action="store_const", const="none",
                        default=argparse.SUPPRESS, help="the same as --preload none")


def _help(field: FieldInfo) -> str:
    default = field.default if not callable(field.default_factory) else "[]"
    return f"{field.description} (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfserve", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hfserve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve models over the OpenAI API")
    serve.add_argument("sources", nargs="*", metavar="MODEL",
                       help="model folder, .gguf file or HuggingFace cache id")
    add_settings_flags(serve)
    hardware = sub.add_parser("hardware", help="show detected devices")
    hardware.add_argument("--json", action="store_true", help="print JSON")
    prof = sub.add_parser("profile", help="measure a model on each device; placement uses it")
    prof.add_argument("source", metavar="MODEL")
    prof.add_argument("--devices", default="cpu",
                      help="comma-separated kinds or ids, e.g. cpu,openvino,cuda:0")
    prof.add_argument("--seconds", type=float, default=5.0, help="time per device")
    prof.add_argument("--threads", type=int, default=None, help="intra-op threads")
    prof.add_argument("--backend", default="auto", help="auto, torch, openvino, onnxruntime")
    prof.add_argument("--cache-dir", type=Path, default=None)
    hash_key = sub.add_parser("hash-key", help="print the hash of an API key, for a `keys` "
                              "entry's `hash` (reads the key from stdin)")
    hash_key.add_argument("--generate", action="store_true",
                          help="make a new random key, print it and its hash")
    models = sub.add_parser("models", help="list the models a serve would offer")
    models.add_argument("sources", nargs="*", metavar="MODEL")
    add_settings_flags(models)
    mcp = sub.add_parser("mcp", help="serve the models as MCP tools over stdio (desktop "
                         "clients)")
    mcp.add_argument("sources", nargs="*", metavar="MODEL")
    add_settings_flags(mcp)
    remote.add_commands(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    given = {k: v for k, v in vars(args).items() if k not in ("command", "sources", "json")}
    settings = Settings(**given)
    extra = [ModelConfig(source=s) for s in getattr(args, "sources", [])]
    from hfserve.registry.discovery import scan_folders, scan_hf_cache

    found = scan_folders(settings.model_dirs) + (scan_hf_cache() if settings.hf_cache else [])
    return settings.model_copy(update={"models": [*settings.models, *extra, *found]})


def _settings_to_serve(args: argparse.Namespace) -> Settings | None:
    """What ``serve`` and ``mcp`` start from; None (having said why) without models."""
    # Progress bars of weight loading (huggingface_hub's switch, which transformers follows),
    # GGUF dequantization and exports (plain tqdm) are noise in a server's log. Set here,
    # the model and export processes inherit them. Set before anything imports
    # huggingface_hub, which reads its switch once; set them yourself to keep the bars.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    settings = settings_from(args)
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.models:
        print("hfserve: no models given (pass MODEL, --config or --model-dirs)", file=sys.stderr)
        return None
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    from hfserve.api.server import serve
    from hfserve.security.exposure import exposure_problem

    settings = _settings_to_serve(args)
    if settings is None:
        return 2
    problem = exposure_problem(settings)
    if problem:
        print(f"hfserve: {problem}", file=sys.stderr)
        return 2
    serve(settings)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """The same models over stdio; stdout carries the protocol, logs go to stderr."""
    from hfserve.mcp.stdio import serve_stdio

    settings = _settings_to_serve(args)
    if settings is None:
        return 2
    serve_stdio(settings)
    return 0


def cmd_hardware(args: argparse.Namespace) -> int:
    from hfserve.hardware import detect, format_table, to_json

    devices = detect()
    print(to_json(devices) if args.json else format_table(devices))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from hfserve.registry import build_spec

    rows = []
    for mc in settings_from(args).models:
        try:
            spec = build_spec(mc)
            rows.append({"id": mc.served_name, "family": spec.family.value,
                         "task": spec.task.value, "source": mc.source})
        except Exception as exc:
            rows.append({"id": mc.served_name, "error": str(exc), "source": mc.source})
    print(json.dumps(rows, indent=2))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from hfserve.runtime.profiler import profile

    cache_dir = args.cache_dir or Settings.model_fields["cache_dir"].default
    mc = ModelConfig(source=args.source, threads=args.threads, backend=args.backend)
    results = profile(mc, [d.strip() for d in args.devices.split(",") if d.strip()],
                      cache_dir, args.seconds)
    return 0 if results else 1


def cmd_hash_key(args: argparse.Namespace) -> int:
    """The key comes on stdin, never as an argument (which shell history and ps show)."""
    import secrets

    from hfserve.security import hashing

    if args.generate:
        key = secrets.token_urlsafe(32)
        print(f"key:  {key}\nhash: {hashing.hash_key(key)}")
        return 0
    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass("API key: ")
    else:
        key = sys.stdin.readline().rstrip("\r\n")
    problem = hashing.weakness(key)
    if problem:
        print(f"hfserve: {problem}", file=sys.stderr)
        return 2
    print(hashing.hash_key(key))
    return 0


COMMANDS = {"serve": cmd_serve, "mcp": cmd_mcp, "hardware": cmd_hardware, "models": cmd_models,
            "profile": cmd_profile, "hash-key": cmd_hash_key, **remote.COMMANDS}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
