"""Annotators' identities: what is published in their place, and the local key that maps them back.

After a pull, gold names each annotator as Label Studio knows them (an e-mail address). The
published dataset must not: by default ``annotate publish`` replaces every annotator with a
pseudonym, ``annotator-1``, ``annotator-2``, …, stable from one publish to the next because the
mapping is kept in a local file (git-ignored, readable only by its owner) and only grows. The
mapping itself is never published. Real names go out only when asked for explicitly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from annotate.corpus import atomic_write_text
from annotate.errors import PublishError

PREFIX = "annotator-"
PRIVATE_DIR = ".private"
MAPPING_FILE = "annotators.json"
_PSEUDONYM = re.compile(rf"^{re.escape(PREFIX)}(\d+)$")


def mapping_path(root: Path) -> Path:
    """Where a project keeps its annotator → pseudonym mapping (``.private/`` is git-ignored)."""
    return root / PRIVATE_DIR / MAPPING_FILE


def read_mapping(path: Path) -> dict[str, str]:
    """The mapping kept so far; an absent file is an empty mapping."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise PublishError(f"{path}: cannot read the annotator pseudonyms (expected a JSON object)") from None
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise PublishError(f"{path}: annotator pseudonyms must be a JSON object of name → pseudonym")
    if len(set(raw.values())) != len(raw):
        raise PublishError(f"{path}: two annotators share a pseudonym; fix the file by hand")
    return dict(raw)


def extend_mapping(mapping: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """``mapping`` plus a new pseudonym for every name it lacks, numbered on after the highest one.

    New names are numbered in sorted order, so the same gold gives the same pseudonyms on any
    machine that starts without a mapping; existing pseudonyms never change.
    """
    extended = dict(mapping)
    numbers = [int(m.group(1)) for m in map(_PSEUDONYM.match, extended.values()) if m]
    following = max(numbers, default=0) + 1
    for name in sorted(set(names) - set(extended) - {""}):
        extended[name] = f"{PREFIX}{following}"
        following += 1
    return extended


def pseudonyms(names: Iterable[str], path: Path) -> dict[str, str]:
    """Pseudonyms for ``names``, kept in ``path`` (written, mode 0600, only when a new name appears)."""
    names = set(names)
    kept = read_mapping(path)
    extended = extend_mapping(kept, names)
    if extended != kept:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(extended, indent=2, sort_keys=True, ensure_ascii=False) + "\n", 0o600)
    return {name: extended[name] for name in names if name in extended}


def replace_names(value: object, mapping: Mapping[str, str]) -> object:
    """``value`` (JSON-like) with every annotator name replaced by its pseudonym, in keys and strings.

    Names inside longer strings (``alice@x.org vs bob@x.org``) are replaced too, longest first, so
    no address survives in a sentence the figures happen to carry.
    """
    order = sorted((name for name in mapping if name), key=len, reverse=True)

    def text(string: str) -> str:
        if string in mapping:
            return mapping[string]
        for name in order:
            if name in string:
                string = string.replace(name, mapping[name])
        return string

    def walk(item: object) -> object:
        if isinstance(item, str):
            return text(item)
        if isinstance(item, dict):
            return {text(k) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)
