"""No module in src/ runs code it is handed: every module is parsed and searched for the
calls that would (unpickling, unsafe YAML, eval/exec, unsandboxed jinja2, custom model code,
a shell). The checker is tried on planted bad code too, so that it cannot pass by finding
nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "hfserve"
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}
UNSANDBOXED_JINJA = {"Environment", "Template", "NativeEnvironment"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a name or attribute chain, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _call_problem(call: ast.Call, jinja_names: set[str]) -> str | None:
    name = _dotted(call.func)
    if name in ("eval", "exec"):
        return f"{name}() runs arbitrary code"
    if name in ("pickle.load", "pickle.loads", "dill.load", "dill.loads"):
        return f"{name}() unpickles (runs code)"
    if name == "torch.load" and not _is_true(_keyword(call, "weights_only")):
        return "torch.load() without weights_only=True unpickles"
    if name in ("yaml.unsafe_load", "yaml.full_load"):
        return f"{name}() builds arbitrary objects"
    if name == "yaml.load":
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
            return "yaml.load() without SafeLoader"
    if name in ("os.system", "os.popen", "asyncio.create_subprocess_shell"):
        return f"{name}() runs a shell"
    if _is_true(_keyword(call, "shell")):
        return "shell=True runs a shell"
    if _is_true(_keyword(call, "trust_remote_code")):
        return "trust_remote_code=True runs a model's own code"
    if name in jinja_names or (name.startswith("jinja2.")
                               and name.rsplit(".", 1)[-1] in UNSANDBOXED_JINJA):
        return f"{name}() is not jinja2's sandbox"
    return None


def problems(source: str, filename: str = "<string>") -> list[str]:
    """Each unsafe call in ``source`` as ``file:line: reason``."""
    tree = ast.parse(source, filename)
    # Names bound to jinja2's unsandboxed classes by ``from jinja2 import ...``.
    jinja_names = {alias.asname or alias.name for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and (node.module or "") == "jinja2"
                   for alias in node.names if alias.name in UNSANDBOXED_JINJA}
    found = []
    for node in ast.walk(tree):
        reason = None
        if isinstance(node, ast.Call):
            reason = _call_problem(node, jinja_names)
        elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "dill") and any(
                a.name in ("load", "loads", "Unpickler") for a in node.names):
            reason = f"imports {node.module}'s unpickler"
        elif isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "trust_remote_code"
                and _is_true(v) for k, v in zip(node.keys, node.values, strict=True)):
            reason = "trust_remote_code: True runs a model's own code"
        if reason:
            found.append(f"{filename}:{node.lineno}: {reason}")
    return found


def test_no_module_in_src_runs_code_it_is_handed() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 50
    found = [p for path in modules
             for p in problems(path.read_text(), str(path.relative_to(SRC)))]
    assert found == []


BAD = """
import pickle, torch, yaml, subprocess, os, jinja2
from jinja2 import Environment as Env
from pickle import loads
pickle.load(open("x", "rb"))
pickle.loads(b"")
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
eval("1")
exec("x = 1")
jinja2.Environment()
Env()
AutoModel.from_pretrained("x", trust_remote_code=True)
kwargs = {"trust_remote_code": True}
subprocess.run("ls", shell=True)
os.system("ls")
yaml.load("a: 1")
yaml.load("a: 1", Loader=yaml.Loader)
yaml.unsafe_load("a: 1")
"""

GOOD = """
import torch, yaml, subprocess
from jinja2.sandbox import ImmutableSandboxedEnvironment
torch.load("w.pt", weights_only=True)
yaml.load("a: 1", Loader=yaml.SafeLoader)
yaml.safe_load("a: 1")
subprocess.run(["ls"], shell=False)
ImmutableSandboxedEnvironment()
model.eval()
AutoModel.from_pretrained("x", trust_remote_code=flag)
"""


def test_the_checker_finds_every_planted_unsafe_call() -> None:
    found = problems(BAD)
    lines = sorted({int(p.split(":")[1]) for p in found})
    # Every line from the pickle import on is one planted problem.
    assert lines == list(range(4, 20)), found
    assert any("weights_only" in p for p in found)
    assert any("sandbox" in p for p in found)


def test_the_checker_passes_safe_forms() -> None:
    assert problems(GOOD) == []


@pytest.mark.parametrize("line", ["torch.load(f)", "eval(x)", "yaml.load(s)",
                                  "pickle.loads(b)", "Popen(c, shell=True)"])
def test_one_planted_call_in_a_module_fails_the_check(line) -> None:
    assert len(problems(f"def f(f, x, s, b, c):\n    {line}\n")) == 1


# peft's adapter loader: an adapter folder is a config and weights, and peft runs no code
# from it (it has no trust_remote_code to pass).
NO_REMOTE_CODE = {"PeftModel"}


def unsettled_loads(source: str, filename: str = "<string>") -> list[str]:
    """``from_pretrained`` calls that pass neither ``trust_remote_code`` nor a ``**`` of
    keyword arguments (where the settings' helpers put it)."""
    return [f"{filename}:{node.lineno}" for node in ast.walk(ast.parse(source, filename))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "from_pretrained"
            and getattr(node.func.value, "id", None) not in NO_REMOTE_CODE
            and not any(k.arg in ("trust_remote_code", None) for k in node.keywords)]


def test_every_from_pretrained_in_src_passes_trust_remote_code() -> None:
    found = [p for path in sorted(SRC.rglob("*.py"))
             for p in unsettled_loads(path.read_text(), str(path.relative_to(SRC)))]
    assert found == []
    assert unsettled_loads("AutoTokenizer.from_pretrained(path)") == ["<string>:1"]
    assert unsettled_loads("A.from_pretrained(p, **tokenizer_kwargs(spec))") == []
