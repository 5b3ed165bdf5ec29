"""Shared fixtures: the project's settings, schema, config and tokenizer, spans by phrase, and awkward text."""

from __future__ import annotations

import contextlib
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
# its own, so a session fixture is one per worker that asks for it, and a module fixture one per
# worker that runs the module's tests. So the work is handed out in units: every test of a server in
# one unit (one Label Studio on SQLite and one on PostgreSQL for the whole run, as serially), the
# modules that start a local Ray in one (two Rays never start at once), any other module whole, and a
# test marked ``longest`` (minutes of its own) alone and first, so it runs beside the rest instead of
# after it; then the servers' units, the trainings, the rest. Serially (``-p no:xdist``, ``-n 0``)
# the order of the modules is all this changes.
#
# xdist's own ``loadgroup`` marks a group by renaming each test (``nodeid@group``), which pytest 9
# ignores (a node's id is no longer that attribute): every test was a unit of its own, and both
# workers started both Label Studios. Here each worker writes down the unit of every test it
# collected, and the scheduler below reads that.
GROUP_OF_FIXTURE = {"postgres_studio": "postgres", "local_studio": "studio"}
RAY_MODULES = {"tests/test_apply_ray.py", "tests/test_workers.py"}
GROUP_RANK = {"postgres": 1, "studio": 2, "ray": 3}
UNITS_FOLDER = "annotate_test_units"  # in each worker's workerinput: where it writes its units
_units_folder = pytest.StashKey[Path]()

# Tables are as wide as rich finds COLUMNS when annotate.cli is imported; the tests that read tables
# set it themselves, so an inherited width (xdist's workers start with COLUMNS=80) must not fix it.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def pytest_configure(config):
    config.addinivalue_line("markers", "longest: takes minutes alone; starts first, beside the rest, on two workers")
    config.addinivalue_line("markers", "xdist_group(name): tests that run on one worker, one after the other")
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.stash[_units_folder] = Path(tempfile.mkdtemp(prefix="annotate-test-units-"))


def pytest_unconfigure(config):
    folder = config.stash.get(_units_folder, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _module(item) -> str:
    return item.nodeid.split("::")[0]


def worker_group(item) -> str | None:
    """The group whose worker runs ``item``: its ``xdist_group`` mark, the server or Ray it needs, else none."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    for fixture, group in GROUP_OF_FIXTURE.items():
        if fixture in item.fixturenames:
            return group
    return "ray" if _module(item) in RAY_MODULES else None


def work_unit(item) -> str:
    """What one worker runs as a whole, in order: the item's group, the item alone if ``longest``, else its module."""
    group = worker_group(item)
    if group is not None:
        return f"group {group}"
    return item.nodeid if item.get_closest_marker("longest") else _module(item)


def schedule_rank(item) -> int:
    """How early ``item``'s work is handed out (lowest first)."""
    if item.get_closest_marker("longest"):
        return 0
    group = worker_group(item)
    if group is not None:
        return GROUP_RANK.get(group, 3)
    return 4 if item.get_closest_marker("slow") else 5


def pytest_collection_modifyitems(config, items):
    # A module keeps its tests together (its fixtures are set up once) at the rank of its earliest test;
    # a ``longest`` test goes first in its module.
    rank: dict[str, int] = {}
    for item in items:
        rank[_module(item)] = min(rank.get(_module(item), 9), schedule_rank(item))
    items.sort(key=lambda item: (rank[_module(item)], item.get_closest_marker("longest") is None))
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get(UNITS_FOLDER):
        target = Path(workerinput[UNITS_FOLDER]) / f"{workerinput['workerid']}.json"
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps({item.nodeid: work_unit(item) for item in items}), encoding="utf-8")
        os.replace(partial, target)  # written before this worker reports its collection


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput[UNITS_FOLDER] = str(node.config.stash[_units_folder])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        """xdist's scheduling by scope, a scope being one of ``work_unit``'s units; the units go out in
        the collection's order (the one sorted above)."""

        def __init__(self) -> None:
            super().__init__(config, log)
            self.units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.units is None:  # first asked once every worker has collected, so has written
                self.units = {}
                for path in sorted(config.stash[_units_folder].glob("*.json")):
                    self.units.update(json.loads(path.read_text(encoding="utf-8")))
            return self.units.get(nodeid, nodeid)

    config.option.loadscopereorder = False  # by size, the largest first, would put ``longest`` last
    return WorkUnits()


def processes_of_group(leader: int) -> dict[int, int]:
    """Live (not zombie) processes whose process group is ``leader``: pid → parent pid (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == leader and fields[0] != "Z":
                    found[int(entry.name)] = int(fields[1])
    return found
