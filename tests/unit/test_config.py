"""Typed settings (config.py) and the command line generated from them (cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from hfserve import cli
from hfserve.config import Settings
from hfserve.model_config import ModelConfig


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HFSERVE_"):
            monkeypatch.delenv(key)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# --- Settings ---------------------------------------------------------------------------
def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.models == [] and s.model_dirs == []
    assert s.preload == "all" and s.hf_cache is False
    assert s.device == "auto" and s.threads is None
    assert s.api_key is None
    assert s.max_body_bytes == 16 * 1024 * 1024


def test_port_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSERVE_PORT", "9001")
    assert Settings().port == 9001


def test_bad_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSERVE_PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()


def test_yaml_config_file_with_models(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "hfserve.yaml", {
        "port": 7000, "threads": 2,
        "models": [{"source": "org/embedder", "name": "emb", "max_batch_size": 4},
                   "org/chat"],
    })
    s = Settings(config=path)
    assert s.port == 7000 and s.threads == 2
    assert [m.source for m in s.models] == ["org/embedder", "org/chat"]
    assert s.models[0].name == "emb" and s.models[0].max_batch_size == 4
    assert s.models[1].max_batch_size == 32


def test_config_file_named_by_environment(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"host": "0.0.0.0"})
    monkeypatch.setenv("HFSERVE_CONFIG", str(path))
    assert Settings().host == "0.0.0.0"


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Settings(config=tmp_path / "absent.yaml")


def test_precedence_init_over_env_over_yaml(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"port": 7000, "host": "10.0.0.1",
                                            "log_level": "debug"})
    monkeypatch.setenv("HFSERVE_PORT", "7001")
    monkeypatch.setenv("HFSERVE_HOST", "10.0.0.2")
    s = Settings(config=path, port=7002)
    assert s.port == 7002            # init (command line) beats env
    assert s.host == "10.0.0.2"      # env beats the file
    assert s.log_level == "debug"    # the file beats defaults


def test_models_as_a_comma_string() -> None:
    s = Settings(models="org/a,./b,,c.gguf")
    assert [m.source for m in s.models] == ["org/a", "./b", "c.gguf"]


def test_models_as_a_comma_string_from_yaml(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"models": "org/a,org/b"})
    assert [m.source for m in Settings(config=path).models] == ["org/a", "org/b"]


def test_models_as_a_comma_string_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSERVE_MODELS", "org/a,org/b")
    assert [m.source for m in Settings().models] == ["org/a", "org/b"]


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(prot=9)
    with pytest.raises(ValidationError):
        ModelConfig(source="x", batch=3)
    path = write_yaml(tmp_path / "c.yaml", {"models": [{"source": "x", "maxqueue": 1}]})
    with pytest.raises(ValidationError):
        Settings(config=path)


def test_model_config_limits_are_validated() -> None:
    with pytest.raises(ValidationError):
        ModelConfig(source="x", max_queue=0)
    with pytest.raises(ValidationError):
        ModelConfig(source="x", task="no-such-task")


# --- ModelConfig.served_name ----------------------------------------------------------------
def test_served_name_prefers_the_given_name(tmp_path: Path) -> None:
    assert ModelConfig(source=str(tmp_path), name="chat").served_name == "chat"


def test_served_name_of_a_hub_id() -> None:
    assert ModelConfig(source="HuggingFaceTB/SmolLM2-135M").served_name == \
        "HuggingFaceTB/SmolLM2-135M"


def test_served_name_of_a_folder_path(tmp_path: Path) -> None:
    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    assert ModelConfig(source=str(folder)).served_name == "all-MiniLM-L6-v2"
    assert ModelConfig(source=str(folder) + "/").served_name == "all-MiniLM-L6-v2"


def test_served_name_of_a_gguf_path(tmp_path: Path) -> None:
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    assert ModelConfig(source=str(gguf)).served_name == "SmolLM2-135M-Instruct.Q4_1"


# --- model_configs ----------------------------------------------------------------------------
def test_model_configs_fill_server_wide_defaults() -> None:
    s = Settings(device="cpu", threads=2, models=[
        {"source": "a"}, {"source": "b", "device": "cuda:1", "threads": 4}])
    a, b = s.model_configs()
    assert (a.device, a.threads) == ("cpu", 2)
    assert (b.device, b.threads) == ("cuda:1", 4)
    assert s.models[0].device == "auto"  # the settings themselves are not changed


def test_model_configs_leave_auto_alone() -> None:
    (only,) = Settings(models=["a"]).model_configs()
    assert (only.device, only.threads) == ("auto", None)


# --- command line ----------------------------------------------------------------------------
def test_serve_flags_become_settings() -> None:
    args = cli.build_parser().parse_args(["serve", "a", "b", "--port", "9", "--no-preload",
                                          "--threads", "3"])
    s = cli.settings_from(args)
    assert [m.source for m in s.models] == ["a", "b"]
    assert s.port == 9 and s.threads == 3
    assert s.preload == "none"
    assert s.host == "127.0.0.1"     # not given: the default, not None


def test_command_line_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFSERVE_PORT", "7001")
    monkeypatch.setenv("HFSERVE_HOST", "10.0.0.2")
    s = cli.settings_from(cli.build_parser().parse_args(["serve", "--port", "9"]))
    assert s.port == 9
    assert s.host == "10.0.0.2"


def test_config_file_models_come_before_command_line_models(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"models": [{"source": "from-file"}]})
    args = cli.build_parser().parse_args(["serve", "extra", "--config", str(path)])
    assert [m.source for m in cli.settings_from(args).models] == ["from-file", "extra"]


def test_serve_help_describes_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--max-body-bytes" in out
    assert "Port to bind" in out
    assert "--no-preload" in out
    assert "(default: 8000)" in out


def test_kv_cache_memory_takes_a_size() -> None:
    assert ModelConfig(source="m", kv_cache_memory="512MiB").kv_cache_memory == 512 << 20
    assert ModelConfig(source="m").kv_cache_memory is None
    with pytest.raises(ValidationError):
        ModelConfig(source="m", kv_cache_memory="lots")


@pytest.mark.parametrize(("given", "expected"), [
    ("all", "all"), ("none", "none"), (True, "all"), (False, "none"),
    ("a, b", ["a", "b"]), (["a", "b"], ["a", "b"]), (["none"], "none")])
def test_preload_takes_all_none_or_ids(given, expected) -> None:
    assert Settings(preload=given).preload == expected


def test_preload_of_a_list_names_models_or_aliases() -> None:
    s = Settings(preload=["b"])
    assert s.preloads("x", ["b"]) and not s.preloads("a", [])
    assert Settings().preloads("a", []) and not Settings(preload="none").preloads("a", [])


def test_model_roots_default_to_the_model_dirs(tmp_path: Path) -> None:
    assert Settings(model_dirs=[tmp_path]).roots() == [tmp_path]
    assert Settings(model_dirs=[tmp_path], model_roots=[]).roots() == []


def test_lifecycle_settings_have_their_defaults() -> None:
    s = Settings()
    assert (s.load_timeout_s, s.skip_unservable_models, s.admin_routes) == (300.0, False, True)
    assert (s.idle_ttl_s, s.breaker_failures, s.breaker_open_s) == (None, 5, 30.0)
    assert Settings(memory_reserve="1GiB").memory_reserve == 2**30
    mc = ModelConfig(source="m")
    assert (mc.pinned, mc.idle_ttl_s, mc.discovered) == (False, None, False)


def test_security_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hfserve.cli import build_parser, settings_from

    monkeypatch.setenv("HFSERVE_ALLOWED_HOSTS", "api.example.com, *.corp.example")
    args = build_parser().parse_args(["serve", "--cors-origins", "https://a.example",
                                      "--no-admin-routes", "--public-docs-and-metrics",
                                      "--no-ui",
                                      "--rate-limit-rpm", "30",
                                      "--rate-limit-store", "redis://127.0.0.1:6379/1"])
    s = settings_from(args)
    assert s.cors_origins == ["https://a.example"]
    assert s.allowed_hosts == ["api.example.com", "*.corp.example"]
    assert (s.admin_routes, s.public_docs_and_metrics, s.rate_limit_rpm) == (False, True, 30)
    assert s.ui is False
    assert s.rate_limit_store == "redis://127.0.0.1:6379/1"
    monkeypatch.delenv("HFSERVE_ALLOWED_HOSTS")
    d = Settings()
    assert (d.cors_origins, d.allowed_hosts, d.keys, d.admin_routes) == ([], [], [], True)
    assert (d.public_docs_and_metrics, d.rate_limit_store, d.ui) == (False, "memory", True)


def test_rate_limit_store_must_be_memory_or_redis() -> None:
    with pytest.raises(ValidationError, match="rate_limit_store"):
        Settings(rate_limit_store="memcached://x")


def test_model_limits_are_positive() -> None:
    assert ModelConfig(source="m", rpm=5, tpm=100).rpm == 5
    with pytest.raises(ValidationError):
        ModelConfig(source="m", rpm=0)


def test_model_options_reach_each_models_settings() -> None:
    from hfserve.model_config import ModelConfig, apply_model_options

    models = [ModelConfig(source="/m/a", name="org/a.v2"), ModelConfig(source="/m/b", name="b")]
    out = apply_model_options(models, ["org/a.v2.backend=torch", "*.threads=2",
                                       "b.aliases=[x, y]", "b.int8=true"])
    assert (out[0].backend, out[0].threads, out[0].name) == ("torch", 2, "org/a.v2")
    assert (out[1].threads, out[1].aliases, out[1].int8) == (2, ["x", "y"], True)
    assert models[0].backend == "auto"          # the given configs are left alone


@pytest.mark.parametrize(("option", "message"), [
    ("nope.backend=torch", "no model 'nope'"), ("a.bogus=1", "no setting 'bogus'"),
    ("a.source=/etc", "no setting 'source'"), ("backend=torch", "NAME.KEY=VALUE"),
    ("a.threads=many", "valid integer")])
def test_a_bad_model_option_says_what_is_wrong(option, message) -> None:
    from hfserve.model_config import ModelConfig, apply_model_options

    with pytest.raises(ValueError, match=message):
        apply_model_options([ModelConfig(source="/m/a", name="a")], [option])


def test_the_cli_applies_model_options(tmp_path, capsys) -> None:
    import json

    from hfserve import cli

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    args = cli.build_parser().parse_args(
        ["serve", str(tmp_path), "--model-option", f"{tmp_path.name}.backend=onnxruntime"])
    assert cli.settings_from(args).models[0].backend == "onnxruntime"
    bad = cli.build_parser().parse_args(["serve", str(tmp_path),
                                         "--model-option", "x.dtype=float32"])
    with pytest.raises(SystemExit) as stopped:
        cli.settings_from(bad)
    assert stopped.value.code == 2 and "no model 'x'" in capsys.readouterr().err
