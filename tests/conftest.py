"""Shared fixtures: the project's settings, schema, config and tokenizer, spans by phrase, and awkward text."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from annotate.records import AnnotatedDoc, Span

ROOT = Path(__file__).resolve().parent.parent

# CI runs on 2 shared cores: wall-clock limits inside property tests would fail on load, not on bugs.
hypothesis_settings.register_profile(
    "project", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
hypothesis_settings.load_profile("project")

# Pieces of text that break naive offset handling: curly quotes, dashes, Arabic names, emoji
# (astral code points: UTF-16 offsets differ), combining marks, and CRLF-free newlines.
AWKWARD_PIECES = [
    "Hamas",
    "Mr Trump",
    "“encouraging”",
    "‘Israel’",
    "—",
    "–",
    "Khalil al-Hayya",
    "خليل الحية",
    "غزة",
    "😀",
    "🇵🇸",
    "👩‍👩‍👧",
    "e\u0301",
    "Zoë",
    "n\u0303",
    "57,000",
    "80 per cent",
    "said",
    " ",
    "\n",
    ", ",
    ".",
]

awkward_text = st.lists(st.sampled_from(AWKWARD_PIECES), min_size=1, max_size=30).map("".join)


def usage_error(result) -> str:
    """The message of a usage error (exit code 2, the command's usage first), without rich's box and wrapping."""
    assert result.exit_code == 2, result.output
    lines = [line.strip("│ ") for line in result.stderr.splitlines()]
    assert lines[0].startswith("Usage: "), result.stderr
    message = " ".join(line for line in lines[2:] if not line.startswith(("╭", "╰")))
    return " ".join(message.split()).removeprefix("Error: ")


def span(text: str, phrase: str, label: str, occurrence: int = 0) -> Span:
    """The span of ``phrase`` in ``text``: its first appearance, or the one ``occurrence`` counts from 0."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(phrase, start + 1)
    return Span.from_offsets(text, start, start + len(phrase), label)


def silver_docs(root: Path, schema, articles: int) -> list[AnnotatedDoc]:
    """The shortest seed articles, annotated by the rules: a stand-in gold for plumbing tests."""
    from annotate.articles import read_articles
    from annotate.rules import load_patterns, rule_pipeline
    from annotate.train import predict

    shortest = sorted(read_articles([root / "seeds"]), key=lambda a: len(a.text))[:articles]
    patterns = load_patterns(root / "guidelines" / "patterns.jsonl", schema.names)
    return predict(rule_pipeline(patterns), [AnnotatedDoc(a.id, a.text) for a in shortest], "rules")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def settings(project_root):
    """The repository's own settings (pyproject.toml's [tool.annotate])."""
    from annotate.settings import load_settings

    return load_settings(project_root)


@pytest.fixture(scope="session")
def schema(settings):
    """The repository's label schema (guidelines/labels.toml)."""
    from annotate.labels import load_schema

    return load_schema(settings.schema)


@pytest.fixture(scope="session")
def config(settings) -> Path:
    """The project's spaCy training config (configs/spancat.cfg)."""
    return settings.train_config


@pytest.fixture(scope="session")
def small_config(tmp_path_factory) -> Path:
    """A spancat config that trains in a second or two (tests/backend_process.py's ``tiny_config``), for
    the tests that need *a* model, not the project's: the shipped config has tests of its own."""
    from tests.backend_process import tiny_config

    return tiny_config(tmp_path_factory.mktemp("small-config") / "spancat.cfg")


@pytest.fixture(scope="session")
def nlp():
    """The tokenizer every conversion uses: a blank English pipeline."""
    from annotate.convert import blank_pipeline

    return blank_pipeline("en")


@pytest.fixture(scope="session")
def silver(project_root, schema) -> list[AnnotatedDoc]:
    """The two shortest seed articles, annotated by the rules."""
    return silver_docs(project_root, schema, 2)


@pytest.fixture
def ruler_model_dir(tmp_path) -> Path:
    """A saved pipeline that predicts spans the way a trained one does (``doc.spans["sc"]``):
    blank English plus a SpanRuler marking "Hamas" and "Israel" as ACTOR."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "sc"})
    ruler.add_patterns([{"label": "ACTOR", "pattern": "Hamas"}, {"label": "ACTOR", "pattern": "Israel"}])
    model_dir = tmp_path / "model-best"
    nlp.to_disk(model_dir)
    return model_dir


# Two workers (`make test`: pytest-xdist, ``-n 2 --dist loadgroup``). A worker is a pytest session of
# its own, so a session fixture is one per worker that asks for it: every test of a server goes to the
# one worker that holds that server (one Label Studio on SQLite and one on PostgreSQL for the whole
# run, as serially), and the tests that start a local Ray share a worker so two Rays never start at
# once. Work goes out in the order below: a test marked ``longest`` (minutes of its own) first, so it
# runs beside the rest instead of after it, then the servers' groups, then the trainings, then the
# rest. Serially (``-p no:xdist``, ``-n 0``) the order is all this changes.
#
# xdist's own ``loadgroup`` marks a group by renaming each test (``nodeid@group``), which pytest 9
# ignores (a node's id is no longer that attribute), so every test would be a group of its own. Here
# each worker writes down the groups it collected and the scheduler below reads them.
GROUP_OF_FIXTURE = {"postgres_studio": "postgres", "local_studio": "studio"}
RAY_TESTS = {
    "tests/test_apply_ray.py::test_ray_and_local_engines_write_the_same_shards_scores_included",
    "tests/test_workers.py::test_ray_tasks_give_the_serial_figures",
}
GROUP_RANK = {"postgres": 1, "studio": 2, "ray": 3}
GROUPS_FOLDER = "annotate_test_groups"  # in each worker's workerinput: where it writes its groups
_groups_folder = pytest.StashKey[Path]()

# Tables are as wide as rich finds COLUMNS when annotate.cli is imported; the tests that read tables
# set it themselves, so an inherited width (xdist's workers start with COLUMNS=80) must not fix it.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def pytest_configure(config):
    config.addinivalue_line("markers", "longest: takes minutes alone; starts first, beside the rest, on two workers")
    config.addinivalue_line("markers", "xdist_group(name): tests that run on one worker, one after the other")
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.stash[_groups_folder] = Path(tempfile.mkdtemp(prefix="annotate-test-groups-"))


def pytest_unconfigure(config):
    folder = config.stash.get(_groups_folder, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def worker_group(item) -> str | None:
    """The group whose worker runs ``item``: its ``xdist_group`` mark, the server or Ray it needs, else none."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    for fixture, group in GROUP_OF_FIXTURE.items():
        if fixture in item.fixturenames:
            return group
    if item.nodeid.split("[")[0] in RAY_TESTS:
        return "ray"
    return None


def schedule_rank(item) -> int:
    """Where ``item`` goes in the order the workers are given work (lowest first; ties keep their order)."""
    if item.get_closest_marker("longest"):
        return 0
    group = worker_group(item)
    if group is not None:
        return GROUP_RANK.get(group, 3)
    return 4 if item.get_closest_marker("slow") else 5


def pytest_collection_modifyitems(config, items):
    items.sort(key=schedule_rank)
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get(GROUPS_FOLDER):
        groups = {item.nodeid: group for item in items if (group := worker_group(item)) is not None}
        target = Path(workerinput[GROUPS_FOLDER]) / f"{workerinput['workerid']}.json"
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(groups), encoding="utf-8")
        os.replace(partial, target)  # written before this worker reports its collection


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput[GROUPS_FOLDER] = str(node.config.stash[_groups_folder])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ServerGroups(LoadScopeScheduling):
        """xdist's scheduling by scope, a scope being a test's group (one worker runs all of it, in
        order) or the test alone; scopes go out in the collection's order, the one sorted above."""

        def __init__(self) -> None:
            super().__init__(config, log)
            self.groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first asked once every worker has collected, so has written
                self.groups = {}
                for path in sorted(config.stash[_groups_folder].glob("*.json")):
                    self.groups.update(json.loads(path.read_text(encoding="utf-8")))
            group = self.groups.get(nodeid)
            return nodeid if group is None else f"group {group}"

    config.option.loadscopereorder = False  # by size, the largest first, would put ``longest`` last
    return ServerGroups()
