"""Tiny hand-made articles and a tiny spancat config for the nested cross-validation tests.

The articles are short and share some labeled strings (so a string memorized from one article
can be found in another) and each has one string of its own (so a baseline that peeked at the
held-out article would be caught). The config is the project's with a few steps, narrow layers
and the cue-word suggester, so a training takes about a second.
"""

from __future__ import annotations

import re
from pathlib import Path

from annotate.records import AnnotatedDoc, Span

LABELS = ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]

# (text, label) pieces are spans; plain strings are the text between them.
ARTICLES = {
    "a1": [
        ("Hamas", "ACTOR"),
        " said on Monday that ",
        ("57 people", "FIGURE"),
        " were killed. ",
        ("Israel", "ACTOR"),
        " demanded ",
        ("the release of all hostages", "DEMAND"),
        ". ",
        ("Qatari mediators", "ACTOR"),
        " met in Doha.\n",
    ],
    "a2": [
        ("Israel", "ACTOR"),
        " said that ",
        ("12 soldiers", "FIGURE"),
        " were wounded. ",
        ("Hamas", "ACTOR"),
        " called for ",
        ("a full withdrawal", "DEMAND"),
        ". ",
        ("Egyptian officials", "ACTOR"),
        " travelled to Cairo.\n",
    ],
    "a3": [
        ("Egyptian officials", "ACTOR"),
        " reported that ",
        ("57 people", "FIGURE"),
        " died. ",
        ("Hamas", "ACTOR"),
        " insisted on ",
        ("a full withdrawal", "DEMAND"),
        ". ",
        ("The Red Crescent", "ACTOR"),
        " counted ",
        ("two hundred trucks", "FIGURE"),
        ".\n",
    ],
}


def article(doc_id: str, pieces: list) -> AnnotatedDoc:
    text, spans = "", []
    for piece in pieces:
        if isinstance(piece, tuple):
            spans.append(Span(len(text), len(text) + len(piece[0]), piece[1], piece[0]))
            piece = piece[0]
        text += piece
    return AnnotatedDoc(doc_id, text, tuple(spans))


def articles() -> list[AnnotatedDoc]:
    return [article(doc_id, pieces) for doc_id, pieces in ARTICLES.items()]


def tiny_config(project_root: Path, folder: Path, *, name: str = "tiny.cfg", steps: int = 8) -> Path:
    """configs/spancat.cfg with ``steps`` steps, width 32 and the cue-word suggester."""
    text = (project_root / "configs" / "spancat.cfg").read_text(encoding="utf-8")
    text = re.sub(r"max_steps = \d+", f"max_steps = {steps}", text)
    text = re.sub(r"eval_frequency = \d+", f"eval_frequency = {steps}", text)
    text = re.sub(r"width = \d+", "width = 32", text)
    text = re.sub(r"hidden_size = \d+", "hidden_size = 32", text)
    text = text.replace('@misc = "spacy.preset_spans_suggester.v1"', '@misc = "annotate.cue_suggester.v1"')
    assert "annotate.cue_suggester.v1" in text
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
