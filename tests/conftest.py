"""Shared fixtures: paths of the project and awkward text for property tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent

# CI runs on 2 shared cores: wall-clock limits inside property tests would fail on load, not on bugs.
settings.register_profile("project", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.load_profile("project")

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


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


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
