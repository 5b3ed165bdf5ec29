"""Every package the code imports is declared in pyproject.toml, not merely brought in by another one.

A package that arrives only through another's dependencies (``markdown_it`` through ``rich``)
disappears the day that package drops it; declaring it makes the install say what the code needs.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib.metadata import packages_distributions

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCAL = {"annotate", "tests", "conftest", *(path.stem for path in (ROOT / "bench").glob("*.py"))}  # bench scripts share


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    """Distribution names: the core dependencies, and every optional extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements):
        return {_normal(re.match(r"[A-Za-z0-9._-]+", requirement).group()) for requirement in requirements}

    extras = set().union(*(names(group) for group in project.get("optional-dependencies", {}).values()))
    return names(project["dependencies"]), extras - {_normal(project["name"])}


def _imported(folder: str) -> dict[str, str]:
    """Top-level names of outside packages imported anywhere under ``folder`` → the first file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@cache
def _providers() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    """The distributions that provide an import name (the name itself for one not installed here, e.g. tomli)."""
    return {_normal(name) for name in _providers().get(module, [module])}


def _undeclared(folder: str, declared: set[str]) -> list[str]:
    return [
        f"{where} imports {module} (from {', '.join(sorted(_distributions(module)))}), not declared in pyproject.toml"
        for module, where in sorted(_imported(folder).items())
        if not _distributions(module) & declared
    ]


def test_the_package_imports_only_declared_packages():
    core, extras = _declared()
    assert _undeclared("annotate", core | extras) == []


def test_tests_and_benchmarks_import_only_declared_packages():
    core, extras = _declared()
    assert _undeclared("tests", core | extras) == []
    assert _undeclared("bench", core | extras) == []


def test_the_check_sees_an_import_that_only_comes_along_with_another_package():
    core, extras = _declared()
    assert "markdown_it" in _imported("annotate")
    assert _undeclared("annotate", (core | extras) - {"markdown-it-py"}) == [
        "annotate/labels.py imports markdown_it (from markdown-it-py), not declared in pyproject.toml"
    ]
