"""A fixed evaluation folder for the HTML report tests: three articles, one of them hostile HTML.

Gold and predictions are written by hand so that every kind of error occurs a known number of
times; the folder is made with the same functions ``annotate run`` uses (evaluate, write_reports).
"""

from __future__ import annotations

from pathlib import Path

from annotate.evaluate import evaluate
from annotate.records import AnnotatedDoc
from annotate.report import predictions_sha256, provenance, write_reports
from tests.conftest import span

LABELS = ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]

HOSTILE = (
    'Before <script>window.__reportPwned = 1; document.title = "pwned";</script> the <b>bold</b> claim '
    '<img src="x" onerror="window.__reportImg = 1"> and <iframe srcdoc="<script>parent.__reportFrame = 1'
    '</script>"></iframe> &amp; <a href="javascript:alert(1)">link</a> <style>body{display:none}</style> '
    "Hamas said talks resume."
)
PLAIN = "Hamas demands a full withdrawal. Israel said 57,000 people died, officials said on Tuesday."
THIRD = "Mr Trump will meet Netanyahu next week, sources said."


def gold_docs() -> list[AnnotatedDoc]:
    return [
        AnnotatedDoc(
            "hostile",
            HOSTILE,
            (span(HOSTILE, "Hamas", "ACTOR"), span(HOSTILE, "Hamas said", "ATTRIBUTION")),
        ),
        AnnotatedDoc(
            "plain",
            PLAIN,
            (
                span(PLAIN, "Hamas", "ACTOR"),
                span(PLAIN, "a full withdrawal", "DEMAND"),
                span(PLAIN, "Israel", "ACTOR"),
                span(PLAIN, "57,000 people", "FIGURE"),
                span(PLAIN, "officials said", "ATTRIBUTION"),
            ),
        ),
        AnnotatedDoc("third", THIRD, (span(THIRD, "Mr Trump", "ACTOR"), span(THIRD, "Netanyahu", "ACTOR"))),
    ]


def predicted_docs() -> list[AnnotatedDoc]:
    """hostile: ACTOR right, ATTRIBUTION missed (false negative), `talks` a false positive ACTOR.
    plain: DEMAND with other edges (boundary), `Israel` as FIGURE (label), FIGURE and ATTRIBUTION right.
    third: `Trump` for `Mr Trump` (boundary), Netanyahu right, `sources` a false positive ACTOR."""
    return [
        AnnotatedDoc("hostile", HOSTILE, (span(HOSTILE, "Hamas", "ACTOR"), span(HOSTILE, "talks", "ACTOR"))),
        AnnotatedDoc(
            "plain",
            PLAIN,
            (
                span(PLAIN, "Hamas", "ACTOR"),
                span(PLAIN, "full withdrawal", "DEMAND"),
                span(PLAIN, "Israel", "FIGURE"),
                span(PLAIN, "57,000 people", "FIGURE"),
                span(PLAIN, "officials said", "ATTRIBUTION"),
            ),
        ),
        AnnotatedDoc(
            "third",
            THIRD,
            (span(THIRD, "Trump", "ACTOR"), span(THIRD, "Netanyahu", "ACTOR"), span(THIRD, "sources", "ACTOR")),
        ),
    ]


# kind → number of errors of that kind in the fixture, and label → errors involving it
EXPECTED_KINDS = {"false positive": 2, "false negative": 1, "boundary": 2, "label": 1}
EXPECTED_LABELS = {"ACTOR": 4, "DEMAND": 1, "FIGURE": 1, "ATTRIBUTION": 1}


def write_fixed_evaluation(folder: Path) -> list[AnnotatedDoc]:
    """Write metrics.json, report.md, scores.png and predictions-model.jsonl into ``folder``; return the gold."""
    gold, predicted = gold_docs(), predicted_docs()
    evaluation = evaluate(gold, predicted, LABELS, bootstrap=50, seed=0)
    source = provenance(gold, model="fixture", predictions_sha256={"model": predictions_sha256(predicted)})
    write_reports(folder, {"model": evaluation}, source, title="fixture", predictions={"model": predicted})
    return gold
