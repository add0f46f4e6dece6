"""The hardware layer stays light and imports only downward."""

import ast
import subprocess
import sys
from pathlib import Path

import hfserve.hardware

PACKAGE = Path(hfserve.hardware.__file__).parent
HEAVY = {"torch", "openvino", "onnxruntime", "psutil", "transformers"}
FORBIDDEN = ("hfserve.skills", "hfserve.runtime", "hfserve.api")


def imported_names(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def module_level_names(tree: ast.Module) -> list[str]:
    return imported_names(
        ast.Module(
            body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))],
            type_ignores=[],
        )
    )


def sources() -> list[Path]:
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 8
    return files


def test_no_heavy_import_at_module_level() -> None:
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        heavy = [
            name for name in module_level_names(tree) if name.split(".")[0] in HEAVY
        ]
        assert heavy == [], f"{path.name} imports {heavy} at module level"


def test_no_upward_imports() -> None:
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        upward = [name for name in imported_names(tree) if name.startswith(FORBIDDEN)]
        assert upward == [], f"{path.name} imports {upward}"


def test_importing_the_package_loads_no_accelerator_library() -> None:
    code = (
        "import sys, hfserve.hardware as h; "
        "h.compatible_kinds('moe'); "
        f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PACKAGE.parent.parent)},
    )
    assert result.stdout.strip() == "[]"
