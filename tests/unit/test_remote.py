"""The ``hfserve ps`` table and the remote commands' flags."""

from __future__ import annotations

from hfserve import cli
from hfserve.remote import table

MODELS = [{"id": "minilm", "state": "ready", "device": "cpu", "resident_bytes": 3 << 30,
           "pinned": True, "in_flight": 2, "breaker": "closed"},
          {"id": "cls", "state": "unloaded", "resident_bytes": 0, "breaker": "open"}]


def test_the_table_has_a_row_per_model_with_its_state() -> None:
    lines = table(MODELS).splitlines()
    assert lines[0].split() == ["id", "state", "device", "resident", "pinned", "in_flight",
                                "breaker"]
    assert lines[1].split() == ["minilm", "ready", "cpu", "3.00", "GiB", "yes", "2", "closed"]
    assert lines[2].split() == ["cls", "unloaded", "-", "-", "no", "0", "open"]


def test_remote_commands_take_a_url_and_an_api_key() -> None:
    args = cli.build_parser().parse_args(["load", "m", "--url", "http://h:1", "--api-key",
                                          "k", "--device", "cpu"])
    assert (args.command, args.model, args.url, args.api_key, args.device) == \
        ("load", "m", "http://h:1", "k", "cpu")
    assert cli.COMMANDS["ps"] is not None and cli.COMMANDS["unload"] is not None
