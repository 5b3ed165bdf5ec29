"""The package's layering: imports point down, and only one module touches each outside service."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "annotate"

# Only these modules may import these packages.
OWNERS = {
    "label_studio_sdk": {"studio"},
    "datasets": {"publish"},
    "huggingface_hub": {"publish"},
    "typer": {"cli"},
    "jinja2": {"htmlreport"},
    "fastapi": {"serve"},
    "starlette": {"serve"},
    "uvicorn": {"serve"},
    "ray": {"apply"},
}
ENTRY_POINTS = {"cli", "__main__"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules():
    """Every module, named by its top-level part: ``annotate/cli/gold.py`` counts as ``cli``."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        modules[".".join(parts)] = path
    return modules


def _owner(module: str) -> str:
    return module.split(".")[0]


def test_outside_services_are_imported_by_their_one_module():
    for name, path in _modules().items():
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in OWNERS:
                assert _owner(name) in OWNERS[top], f"annotate/{name}.py imports {top}; only {OWNERS[top]} may"


def test_library_modules_never_import_the_cli():
    for name, path in _modules().items():
        if _owner(name) not in ENTRY_POINTS:
            assert "annotate.cli" not in _imports(path), f"annotate/{name}.py imports the CLI"


def test_library_modules_never_print_or_exit():
    for name, path in _modules().items():
        if _owner(name) in ENTRY_POINTS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"print", "exit", "quit"}, f"annotate/{name}.py calls {node.func.id}()"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) != ("sys", "exit"), f"annotate/{name}.py calls sys.exit()"


# What a command may not do itself: check a target or write a file. Library functions do both (targets
# checked first, files written atomically and together); a command parses, calls one, and prints.
WRITERS = {
    "atomic_write_bytes",
    "atomic_write_text",
    "write_files",
    "write_gold",
    "write_pulled",
    "check_file_target",
    "check_folder_target",
    "write_text",
    "write_bytes",
    "open",
}


def test_commands_leave_writing_files_to_the_library():
    for name, path in _modules().items():
        if _owner(name) != "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                used = WRITERS & {alias.name for alias in node.names}
                assert not used, f"annotate/{name}.py imports {', '.join(sorted(used))}"
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                assert called not in WRITERS, f"annotate/{name}.py calls {called}()"
