"""Shared fixtures: the project's settings, schema, config and tokenizer, spans by phrase, and awkward text."""

from __future__ import annotations

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
