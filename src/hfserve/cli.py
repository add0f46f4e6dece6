# PYTHON_ARGCOMPLETE_OK
"""Command line: ``hfserve serve MODEL...``, ``hfserve mcp MODEL...`` (MCP over stdio),
``hfserve hardware``, ``hfserve models``, ``hfserve doctor``, and
``hfserve ps | load ID | unload ID`` against a running server.

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
from hfserve.config import Settings
from hfserve.model_config import ModelConfig, apply_model_options

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
    parser.add_argument("--model-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                        help="set one model's setting, as its entry in the config file "
                        "would (NAME * for every model), e.g. SmolLM2.backend=torch")
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
    doctor = sub.add_parser("doctor", help="report what this environment has and lacks "
                            "(packages, devices, models, caches) and how to fix it")
    doctor.add_argument("sources", nargs="*", metavar="MODEL")
    doctor.add_argument("--json", action="store_true", help="print JSON")
    add_settings_flags(doctor)
    bench = sub.add_parser("bench", help="a quick load test of a running server "
                           "(requests/s, tokens/s, latency), optionally plotted")
    bench.add_argument("--model", required=True, help="the served model id")
    bench.add_argument("--task", choices=("chat", "completions", "embeddings"), default="chat")
    bench.add_argument("--clients", type=int, default=8, help="concurrent clients")
    bench.add_argument("--seconds", type=float, default=10.0, help="length of the run")
    bench.add_argument("--max-tokens", type=int, default=64, help="tokens per generation")
    bench.add_argument("--plot", type=Path, default=None, metavar="PNG",
                       help="draw throughput and latency to this PNG (and a .json beside it)")
    bench.add_argument("--json", action="store_true", help="print the summary as JSON")
    remote.add_commands(sub)
    remote.add_target(bench)
    skill = sub.add_parser("skill", help="write skill files (see docs/plugins.md)")
    skill_sub = skill.add_subparsers(dest="skill_command", required=True)
    new = skill_sub.add_parser("new", help="write a skill file and its test for a model's "
                               "architecture")
    new.add_argument("source", metavar="MODEL", help="a model folder with config.json")
    new.add_argument("--task", default=None, help="the task to serve (default: the model's)")
    new.add_argument("--out", type=Path, default=Path("skills"), help="folder to write to")
    new.add_argument("--name", default=None, help="file stem (default: hf_<model_type>)")
    new.add_argument("--force", action="store_true", help="replace existing files")
    completion = sub.add_parser("completion", help="print the shell completion script: "
                                "eval \"$(hfserve completion bash)\"")
    completion.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh", "powershell"))
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "sources", "json", "model_option")}
    settings = Settings(**given)
    extra = [ModelConfig(source=s) for s in getattr(args, "sources", [])]
    from hfserve.registry.discovery import scan_folders, scan_hf_cache

    found = scan_folders(settings.model_dirs) + (scan_hf_cache() if settings.hf_cache else [])
    try:
        models = apply_model_options([*settings.models, *extra, *found],
                                     getattr(args, "model_option", []))
    except ValueError as exc:          # pydantic's ValidationError is one too
        print(f"hfserve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings.model_copy(update={"models": models})


def _settings_to_serve(args: argparse.Namespace) -> Settings | None:
    """What ``serve`` and ``mcp`` start from; None (having said why) without models."""
    # Progress bars of weight loading (huggingface_hub's switch, which transformers follows),
    # GGUF dequantization and exports (plain tqdm) help at a terminal and are noise in a
    # log file: they are kept only when stderr is a terminal. Set here, the model and
    # export processes inherit them. Set before anything imports huggingface_hub, which
    # reads its switch once; set them yourself to choose.
    if not sys.stderr.isatty():
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
    if settings.ray:
        from hfserve.ray import launch

        if not launch.available():
            print(f"hfserve: {launch.INSTALL}", file=sys.stderr)
            return 2
        launch.serve_ray(settings)
        return 0
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
    from hfserve.hardware import absent_kinds, detect, format_absences, format_table, to_json

    devices = detect()
    if args.json:
        print(json.dumps({"devices": json.loads(to_json(devices)), "absent": absent_kinds()},
                         indent=2))
    else:
        print("\n\n".join(filter(None, [format_table(devices), format_absences(absent_kinds())])))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from hfserve.doctor import models

    print(json.dumps(models(settings_from(args)), indent=2))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from hfserve import doctor

    found = doctor.report(settings_from(args))
    print(json.dumps(found, indent=2) if args.json else doctor.format_report(found))
    return 0 if doctor.healthy(found) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    import asyncio

    from hfserve import loadtest

    samples = asyncio.run(loadtest.run(args.url, args.model, args.task, args.clients,
                                       args.seconds, args.max_tokens, args.api_key))
    found = loadtest.summary(samples)
    if args.plot:
        loadtest.plot(samples, args.plot, f"{args.model} {args.task}, {args.clients} clients")
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(f"{found['requests']} requests ({found['errors']} failed) in {found['seconds']}s: "
              f"{found['requests_per_s']} req/s, {found['tokens_per_s']} tok/s; latency ms "
              f"{found['latency_ms']}; ttft ms {found['ttft_ms']}")
    return 0 if found["requests"] and not found["errors"] else 1


def cmd_completion(args: argparse.Namespace) -> int:
    try:
        import argcomplete
    except ImportError:
        print("hfserve: completion needs argcomplete (pip install 'hfserve[cli]')",
              file=sys.stderr)
        return 2
    print(argcomplete.shellcode(["hfserve"], shell=args.shell))
    return 0


def cmd_skill(args: argparse.Namespace) -> int:
    from hfserve.plugins.generator import write_skill

    try:
        written = write_skill(args.source, args.out, args.task, args.name, args.force)
    except (ValueError, FileExistsError) as exc:
        print(f"hfserve: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from hfserve.runtime.lifecycle.profiler import profile

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


COMMANDS = {"serve": cmd_serve, "mcp": cmd_mcp, "hardware": cmd_hardware,
            "models": cmd_models, "doctor": cmd_doctor, "bench": cmd_bench,
            "profile": cmd_profile, "hash-key": cmd_hash_key, "completion": cmd_completion,
            "skill": cmd_skill, **remote.COMMANDS}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:  # answers the shell's completion request and exits; nothing otherwise
        import argcomplete

        argcomplete.autocomplete(parser)
    except ImportError:
        pass
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
