"""The package's layering: imports point down, and only one module touches each outside service."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "annotate"

# Only these modules may import these packages: a top-level name (``cli``) stands for every module
# under it, a dotted one (``studio.client``) for that module alone.
OWNERS = {
    "label_studio_sdk": {"studio.client"},
    "datasets": {"publish"},
    "huggingface_hub": {"publish"},
    "typer": {"cli"},
    "jinja2": {"presentation"},
    "matplotlib": {"figures"},
    "fastapi": {"backend"},
    "starlette": {"backend"},
    "uvicorn": {"backend"},
    "ray": {"apply", "engine"},
    # The local Label Studio's server process: only its launcher touches the server's own packages.
    "label_studio": {"studio.launch"},
    "django": {"studio.launch"},
    "gunicorn": {"studio.launch"},
}
# What only the Label Studio client touches: its SDK client and its request helpers.
CLIENT_PRIVATE = {"_client", "_client_wrapper", "_call", "_request", "_send", "_ml_request"}
# Programs of their own, which may print and exit: the CLI, ``python -m annotate``, and the process
# ``studio up`` starts (``python -m annotate.studio.launch``).
ENTRY_POINTS = {"cli", "__main__", "studio.launch"}


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


def _entry_point(module: str) -> bool:
    return _owner(module) in ENTRY_POINTS or module in ENTRY_POINTS


def test_outside_services_are_imported_by_their_one_module():
    for name, path in _modules().items():
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in OWNERS:
                allowed = name in OWNERS[top] or _owner(name) in OWNERS[top]
                assert allowed, f"annotate/{name}.py imports {top}; only {OWNERS[top]} may"


def test_no_module_but_the_client_uses_its_private_members():
    """Workflows, the CLI, tests and benchmarks call the client's public methods, never what it keeps to itself.

    Another class's own ``self._client`` is its business; ``studio._request(...)`` from outside is not.
    """
    root = PACKAGE.parent
    client = PACKAGE / "studio" / "client.py"
    for path in sorted([*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "bench").rglob("*.py")]):
        if path == client:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Attribute) or node.attr not in CLIENT_PRIVATE:
                continue
            on_itself = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            own = on_itself and node.attr != "_client_wrapper"
            assert own, f"{path.relative_to(root)}:{node.lineno} uses .{node.attr}, private to the Label Studio client"


def test_library_modules_never_import_the_cli():
    for name, path in _modules().items():
        if not _entry_point(name):
            assert "annotate.cli" not in _imports(path), f"annotate/{name}.py imports the CLI"


def test_library_modules_never_print_or_exit():
    for name, path in _modules().items():
        if _entry_point(name):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"print", "exit", "quit"}, f"annotate/{name}.py calls {node.func.id}()"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) != ("sys", "exit"), f"annotate/{name}.py calls sys.exit()"


def test_only_the_model_module_loads_or_hashes_a_saved_pipeline():
    """A saved model has one owner (annotate/model.py): one loader, one hash, recorded and read back from there."""
    for name, path in _modules().items():
        if name == "model":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = node.func
            if isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name):
                assert (called.value.id, called.attr) != ("spacy", "load"), f"annotate/{name}.py calls spacy.load()"
            if isinstance(called, ast.Name):
                assert called.id != "pipeline_sha256", f"annotate/{name}.py hashes a model instead of reading it"


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
