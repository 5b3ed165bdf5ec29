"""The locks every install path uses (requirements/*.lock) pin what pyproject.toml declares, with hashes.

A dependency added to pyproject.toml but not to the locks would be missing from `make run`'s
environment (the package goes in with --no-deps); a pin without a hash would make pip refuse
the whole lock in --require-hashes mode.
"""

from __future__ import annotations

import re
import sys

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCKS = ROOT / "requirements"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: str) -> dict[str, tuple[str, int]]:
    """Distribution → (version, number of hashes) of one lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (LOCKS / lock).read_text(encoding="utf-8").splitlines():
        found = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if found:
            current = _normal(found.group(1))
            pins[current] = (found.group(2), 0)
        elif "--hash=sha256:" in line and current is not None:
            pins[current] = (pins[current][0], pins[current][1] + 1)
    return pins


def _declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(text) for text in project["optional-dependencies"][extra]]
    environment = {"python_version": "3.11", "python_full_version": "3.11.0"}
    return [req for req in wanted if req.marker is None or req.marker.evaluate(environment)]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("core.lock", ()),
        ("studio.lock", ("studio",)),
        ("all.lock", ("test", "studio", "browser", "serve", "scale")),
    ],
)
def test_each_lock_pins_every_declared_dependency_within_its_range_with_hashes(lock, extras):
    pins = _pins(lock)
    assert pins, f"{lock} pins nothing"
    for requirement in _declared(*extras):
        name = _normal(requirement.name)
        if name == "news-annotate":
            continue
        assert name in pins, f"{requirement} is declared in pyproject.toml but not pinned in {lock}; run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{lock}: {name}=={version} ∉ {requirement}"
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"{lock}: no hash for {', '.join(unhashed)}"


def test_the_smaller_locks_agree_with_the_full_one():
    full = _pins("all.lock")
    for lock in ("core.lock", "studio.lock"):
        for name, (version, _) in _pins(lock).items():
            assert full.get(name, (None,))[0] == version, f"{lock} pins {name}=={version}, all.lock does not"
