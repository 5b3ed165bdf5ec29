"""The review set's pieces that need no server: its model version and how a stored prediction is compared."""

from __future__ import annotations

from annotate import lsformat
from annotate.records import Span
from annotate.studio.review import review_version

TEXT = "Talks 😀 resume. Hamas said “no”."
HAMAS = Span.from_offsets(TEXT, TEXT.index("Hamas"), TEXT.index("Hamas") + 5, "ACTOR")
QUOTE = Span.from_offsets(TEXT, TEXT.index("Hamas"), len(TEXT) - 1, "ATTRIBUTION")


def stored(payload: dict) -> dict:
    """A prediction as Label Studio returns it: ids, origin and task added, regions in another order."""
    regions = [{**region, "id": f"r{n}", "origin": "prediction"} for n, region in enumerate(payload["result"])]
    return {**payload, "id": 9, "task": 3, "result": regions[::-1], "created_ago": "1 minute"}


def test_review_version_names_the_rule():
    assert review_version(2) == "adjudication-min2"


def test_a_stored_prediction_equals_the_payload_it_came_from():
    payload = lsformat.prediction_payload([HAMAS, QUOTE], "adjudication-min2", 0.5)
    assert lsformat.same_prediction(stored(payload), payload)


def test_other_spans_score_or_version_differ():
    payload = lsformat.prediction_payload([HAMAS, QUOTE], "adjudication-min2", 0.5)
    assert not lsformat.same_prediction(stored(lsformat.prediction_payload([HAMAS], "adjudication-min2", 0.5)), payload)
    assert not lsformat.same_prediction(stored({**payload, "score": 1.0}), payload)
    assert not lsformat.same_prediction(stored({**payload, "model_version": "adjudication-min3"}), payload)
    moved = Span.from_offsets(TEXT, HAMAS.start, HAMAS.end - 1, "ACTOR")
    assert not lsformat.same_prediction(
        stored(lsformat.prediction_payload([moved, QUOTE], "adjudication-min2", 0.5)), payload
    )
