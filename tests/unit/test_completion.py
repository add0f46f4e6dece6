"""Shell completion: ``hfserve completion bash`` prints a script bash accepts, and the
completion request a shell makes is answered with hfserve's own commands and flags."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def _complete(tmp_path, line: str) -> list[str]:
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}
    subprocess.run([sys.executable, "-m", "hfserve"], env=env, timeout=60, check=False,
                   capture_output=True)
    return [word.strip() for word in out.read_text().split("\n")]


def test_commands_and_flags_complete(tmp_path) -> None:
    assert _complete(tmp_path, "hfserve do") == ["doctor"]
    assert {"serve", "hardware", "bench", "doctor"} <= set(_complete(tmp_path, "hfserve "))
    flags = _complete(tmp_path, "hfserve bench --pl")
    assert flags == ["--plot"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_bash_script_is_valid_bash(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "hfserve", "completion", "bash"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "complete" in done.stdout and "hfserve" in done.stdout
    script = tmp_path / "c.sh"
    script.write_text(done.stdout)
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
