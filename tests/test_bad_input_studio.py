"""Bad write targets of ``pull`` against the real Label Studio: refused before the export, nothing written."""

from __future__ import annotations

import os
import uuid

import pytest

from annotate.errors import TargetError
from annotate.labels import load_schema
from annotate.records import Article, Span
from annotate.settings import load_settings
from annotate.studio.pull import pull
from annotate.studio.push import push

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio


def _files(folder):
    return {
        str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else p.is_dir() or p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("kind", ["user's gold", "gold is a folder", "pulled is a link"])
def test_pull_writes_nothing_when_any_target_is_refused(local_studio, project_root, tmp_path, kind):
    schema = load_schema(load_settings(project_root).schema)
    connection = local_studio.connect()
    title = f"Test {uuid.uuid4().hex[:10]}"
    text = "Hamas said Israel"
    push(connection, [Article("a", text)], title=title, schema=schema)
    (task,) = [tasks[0][0] for tasks in connection.task_index(connection.project(title)).values()]
    connection.annotate(task, [Span.from_offsets(text, 0, 5, "ACTOR")])
    gold, pulled = tmp_path / "gold.jsonl", tmp_path / "pulled.jsonl"
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    if kind == "user's gold":
        gold.write_text("my own list of things\n", encoding="utf-8")
    elif kind == "gold is a folder":
        gold.mkdir()
    else:
        pulled.symlink_to(tmp_path / "notes.txt")
    before = _files(tmp_path)
    with pytest.raises(TargetError):
        pull(connection, title=title, schema=schema, gold_path=gold, pulled_path=pulled, snapshots=tmp_path / "snap")
    assert _files(tmp_path) == before
