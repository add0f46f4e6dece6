"""Layer rules of the design, checked by parsing every module's imports."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import hfserve

PACKAGE = Path(hfserve.__file__).parent


@dataclass(frozen=True)
class Import:
    module: str        # absolute dotted name
    top_level: bool    # executed when the module is imported (not inside a function)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve_relative(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, top_level, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = resolve_relative(path, child)
                found.append(Import(base, top_level, child.lineno))
                # "from hfserve import runtime" names a submodule
                found.extend(Import(f"{base}.{a.name}", top_level, child.lineno)
                             for a in child.names)
            nested = top_level and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, nested)

    visit(tree, True)
    return found


def modules(layer: str) -> list[Path]:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules under {layer}/"
    return files


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(layer: str, forbidden: tuple[str, ...], *, top_level_only: bool = False
               ) -> list[str]:
    out = []
    for path in modules(layer):
        for imp in imports_of(path):
            if within(imp.module, forbidden) and (imp.top_level or not top_level_only):
                out.append(f"{path.relative_to(PACKAGE)}:{imp.line} imports {imp.module}")
    return out


RULES = {
    "api": ("torch", "transformers", "optimum", "hfserve.skills"),
    "runtime": ("fastapi", "starlette", "hfserve.api", "hfserve.mcp"),
    # The MCP front end: the seam, as the HTTP routes; never the routes themselves.
    "mcp": ("torch", "transformers", "optimum", "hfserve.skills", "hfserve.api", "fastapi"),
    "skills": ("hfserve.runtime", "hfserve.api", "fastapi", "starlette"),
    "hardware": ("hfserve.skills", "hfserve.runtime", "hfserve.api"),
    "registry": ("hfserve.api", "hfserve.runtime", "hfserve.skills"),
    # Below the skills: the torch LM engine, text helpers, backends (each never above itself).
    "engines": ("hfserve.skills", "hfserve.runtime", "hfserve.api", "fastapi"),
    "text": ("hfserve.skills", "hfserve.engines", "hfserve.runtime", "hfserve.api", "fastapi"),
    "backends": ("hfserve.skills", "hfserve.engines", "hfserve.text", "hfserve.runtime",
                 "hfserve.api", "fastapi"),
    # Ray Serve mode: the ingress and the replicas' wrapper; models run in the engine.
    "ray": ("torch", "transformers", "optimum", "hfserve.skills"),
    # Limits and keys serve every front end: nothing of the web framework or the runtime.
    "security": ("fastapi", "starlette", "hfserve.api", "hfserve.runtime", "hfserve.skills",
                 "torch", "transformers"),
}


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_never_imports_upward_or_across(layer: str) -> None:
    assert violations(layer, RULES[layer]) == []


# The seam: a front end imports these of the runtime and nothing else; the engine itself
# is built only in the app factory and the stdio MCP server (the composition roots).
SEAM = ("hfserve.runtime.client", "hfserve.runtime.events", "hfserve.runtime.served")
COMPOSITION_ROOT = ("api/app.py", "mcp/stdio.py")


def test_front_ends_import_only_the_seam_of_the_runtime() -> None:
    out = []
    for path in [*modules("api"), *modules("mcp")]:
        for imp in imports_of(path):
            name = imp.module
            if not within(name, ("hfserve.runtime",)) or name == "hfserve.runtime" or \
                    within(name, SEAM):
                continue
            where = str(path.relative_to(PACKAGE))
            if where in COMPOSITION_ROOT and within(name, ("hfserve.runtime.engine",)):
                continue
            out.append(f"{where}:{imp.line} imports {name}")
    assert out == []


def test_the_seam_check_catches_a_route_importing_the_scheduler(tmp_path: Path,
                                                                monkeypatch) -> None:
    fake = tmp_path / "hfserve" / "api" / "routes"
    fake.mkdir(parents=True)
    (fake / "chat.py").write_text("from hfserve.runtime.generation.scheduler import Finished\n")
    (tmp_path / "hfserve" / "mcp").mkdir()
    (tmp_path / "hfserve" / "mcp" / "__init__.py").write_text("")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "hfserve")
    with pytest.raises(AssertionError, match="runtime.generation.scheduler"):
        test_front_ends_import_only_the_seam_of_the_runtime()


def test_the_runtime_imports_only_the_contracts_of_skills() -> None:
    out = []
    for path in modules("runtime"):
        for imp in imports_of(path):
            below = ("hfserve.skills", "hfserve.engines", "hfserve.text", "hfserve.backends")
            if within(imp.module, below) and imp.module not in below \
                    and not within(imp.module, ("hfserve.skills.base",
                                                "hfserve.backends.placement")):
                out.append(f"{path.relative_to(PACKAGE)}:{imp.line} imports {imp.module}")
    assert out == []


@pytest.mark.parametrize("layer", ["runtime", "api", "mcp", "registry", "hardware"])
def test_no_torch_at_module_level(layer: str) -> None:
    heavy = ("torch", "transformers", "openvino", "onnxruntime", "optimum")
    assert violations(layer, heavy, top_level_only=True) == []


def test_errors_and_types_import_nothing_from_the_server() -> None:
    for name in ("errors.py", "types.py"):
        assert [i.module for i in imports_of(PACKAGE / name)
                if within(i.module, ("hfserve", "fastapi", "torch"))] == []


# --- the checker itself ------------------------------------------------------------------
def test_checker_sees_function_level_and_relative_imports(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    fake_pkg = tmp_path / "hfserve"
    (fake_pkg / "api").mkdir(parents=True)
    source = fake_pkg / "api" / "route.py"
    source.write_text(
        "import json\n"
        "from ..runtime import engine\n"
        "def handler():\n"
        "    import torch.nn\n"
        "    from transformers import AutoModel\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake_pkg)
    found = {(i.module, i.top_level) for i in imports_of(source)}
    assert ("json", True) in found
    assert ("hfserve.runtime.engine", True) in found
    assert ("torch.nn", False) in found
    assert ("transformers", False) in found
    assert violations("api", ("torch",)) == ["api/route.py:4 imports torch.nn"]
    assert violations("api", ("torch",), top_level_only=True) == []
