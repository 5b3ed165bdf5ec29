"""The README's labeling path, walked as written on the real Label Studio of the test session.

The commands come from the README's (and docs/annotators.md's) code blocks, not from this file:
if the docs and the commands drift apart, this test fails. It runs them in a copy of the project
(the shipped five-article gold included): push, label through the API, pull with the shipped gold
present, push with predictions onto the tasks already there, several annotators, agreement,
adjudicate with a review set, publish, and loading the published dataset as the README shows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pyarrow import parquet
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import read_gold
from annotate.model import model_version
from annotate.records import Span
from annotate.studio import client

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED_PROJECT = "News spans"
PEOPLE = ("rosa.marquez@newsroom.example", "tom.baker@newsroom.example")


def code_blocks(path: Path) -> list[list[str]]:
    """The lines of every ```sh / ```bash block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [block.splitlines() for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S)]


def commands(path: Path) -> list[list[str]]:
    """Every command line of the file's shell blocks, split as the shell would, comments dropped."""
    found = []
    for block in code_blocks(path):
        for line in block:
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


def documented(path: Path, *prefix: str) -> list[str]:
    """The one documented command that starts with ``prefix`` (e.g. ``annotate pull``), as written."""
    matches = [words for words in commands(path) if tuple(words[: len(prefix)]) == prefix]
    assert matches, f"{path.name} documents no `{' '.join(prefix)}` command"
    return matches[0]


@pytest.fixture
def project(local_studio, tmp_path, monkeypatch):
    """A copy of the project as a new user clones it, pointed at the test session's server."""
    root = tmp_path / "news-annotate"
    root.mkdir()
    for name in ("guidelines", "seeds", "gold", "configs"):
        shutil.copytree(ROOT / name, root / name)
    title = f"Walk {uuid.uuid4().hex[:8]}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'project = "{DOCUMENTED_PROJECT}"' in pyproject, "the README's project title is the default one"
    (root / "pyproject.toml").write_text(
        pyproject.replace(f'project = "{DOCUMENTED_PROJECT}"', f'project = "{title}"'), encoding="utf-8"
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv(client.URL_ENV, local_studio.url)
    monkeypatch.setenv(client.KEY_ENV, local_studio.token)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root, title


def run(words: list[str], title: str):
    """Run a documented ``annotate …`` line; the documented project title becomes this test's project."""
    assert words[0] == "annotate", words
    arguments = [title if word == DOCUMENTED_PROJECT else word for word in words[1:]]
    result = CliRunner().invoke(app, arguments, terminal_width=200)
    assert result.exit_code == 0, f"{shlex.join(words)} failed:\n{result.output}"
    return result


def test_the_readme_labeling_path_as_written(project, local_studio, ruler_model_dir):
    root, title = project
    readme = ROOT / "README.md"
    shipped = {doc.id: doc for doc in read_gold(root / "gold" / "gold.jsonl")}
    assert len(shipped) == 5

    labeling = next(block for block in code_blocks(readme) if any(line.startswith("make studio") for line in block))
    steps = [shlex.split(line, comments=True) for line in labeling]
    steps = [words for words in steps if words]
    assert steps[0] == ["make", "studio"] and steps[1] == ["source", ".venv/bin/activate"], (
        "after `make studio` the README puts `annotate` on PATH before using it"
    )
    assert [words[:2] for words in steps[2:]] == [
        ["annotate", "push"],
        ["annotate", "pull"],
        ["annotate", "gold"],
        ["annotate", "studio"],
    ]
    push, pull, check, down = steps[2:]

    pushed = run(push, title)
    assert "5 article(s) imported, 0 already there" in pushed.output
    # Label three of the five articles, as annotators would in the browser.
    connection = local_studio.connect()
    tasks = {doc_id: entries[0][0] for doc_id, entries in connection.task_index(connection.project(title)).items()}
    labeled = sorted(shipped)[:3]
    for doc_id in labeled:
        connection.annotate(tasks[doc_id], shipped[doc_id].spans[:4])
    pulled = run(pull, title)
    assert "Kept 2 article(s) of the previous gold" in pulled.output
    gold = {doc.id: doc for doc in read_gold(root / "gold" / "gold.jsonl")}
    assert set(gold) == set(shipped), "pull with the shipped gold present loses no article"
    for doc_id in labeled:
        assert gold[doc_id].spans == shipped[doc_id].spans[:4]
        assert gold[doc_id].source == f"seeds/{doc_id}.txt | label-studio:{title} task {tasks[doc_id]}"
    for doc_id in set(shipped) - set(labeled):
        assert gold[doc_id] == shipped[doc_id]
    run(check, title)

    # Pre-labeling the tasks already there with the model `annotate train` writes.
    train = documented(readme, "annotate", "train")
    model_dir = Path(train[train.index("--out") + 1])
    shutil.copytree(ruler_model_dir, root / model_dir)
    with_model = documented(ROOT / "docs" / "annotators.md", "annotate", "push", "--predictions")
    assert with_model[3] == str(model_dir), "docs/annotators.md pre-labels with the model `annotate train` writes"
    predicted = run(with_model, title)
    version = model_version(root / model_dir)
    assert f"Predictions from {version} on tasks already there: 5 added, 0 updated, 0 unchanged" in predicted.output
    assert all([p["model_version"] for p in connection.predictions(task)] == [version] for task in tasks.values())

    # Several annotators, agreement, adjudication with a review set (the README's second block).
    several = documented(readme, "annotate", "push", "--annotators-per-task")
    run(several, title)
    people = [connection.add_user(email) for email in PEOPLE]
    both = sorted(shipped)[3]
    spans = shipped[both].spans
    connection.annotate(tasks[both], spans[:3], user_id=people[0])
    odd = Span.from_offsets(shipped[both].text, 0, 3, "FIGURE")
    connection.annotate(tasks[both], (*spans[:2], odd), user_id=people[1])
    agreement = run(documented(readme, "annotate", "agreement"), title)
    assert "article(s) with two or more annotators" in agreement.output
    adjudicated = run(documented(readme, "annotate", "adjudicate"), title)
    assert "Kept 4 article(s) of the previous gold that were not adjudicated" in adjudicated.output
    assert "Review set 'adjudication-min2'" in adjudicated.output
    gold = {doc.id: doc for doc in read_gold(root / "gold" / "gold.jsonl")}
    assert set(gold) == set(shipped) and gold[both].spans == spans[:2]

    # Publishing: annotators' e-mails never leave the project.
    publish = documented(readme, "annotate", "publish")
    published = run(publish, title)
    assert "Annotators published as pseudonyms" in published.output
    out_dir = root / publish[2]
    texts = [path.read_text(encoding="utf-8") for path in sorted(out_dir.rglob("*.md"))]
    rows = [parquet.read_table(path).to_pylist() for path in sorted(out_dir.rglob("*.parquet"))]
    everything = "\n".join(texts) + json.dumps(rows, ensure_ascii=False)
    for email in (*PEOPLE, "admin@annotate.local"):
        assert email not in everything
    for person in PEOPLE:
        assert person.split("@")[0] not in everything
    annotators = {row["annotator"] for row in rows[0]}
    assert annotators and all(re.fullmatch(r"annotator-\d+(,annotator-\d+)*", name) for name in annotators)
    mapping = json.loads((root / ".private" / "annotators.json").read_text(encoding="utf-8"))
    assert set(PEOPLE) | {"admin@annotate.local"} <= set(mapping)

    loader = next(words for words in commands(readme) if words[:2] == ["python", "-c"])
    environment = {**os.environ, "HF_HOME": str(root / ".hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    loaded = subprocess.run(
        [sys.executable, *loader[1:]], cwd=root, env=environment, capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "num_rows: 5" in loaded.stdout

    stopped = run(down, title)
    assert "No local Label Studio was running" in stopped.output  # the session's server is not ours to stop
