"""A saved spaCy pipeline as a predictor of spans: what push, the ML backend and apply all call.

The same function turns texts into spans with scores wherever predictions are made, so a span
Label Studio shows, a span `apply` writes and a span `evaluate` scores are the same span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotate.labels import Schema
from annotate.records import Span


@dataclass(frozen=True)
class Predictor:
    """A trained spaCy pipeline whose ``doc.spans["sc"]`` become Label Studio predictions."""

    predict: Callable[[list[str]], list[list[tuple[Span, float]]]]
    model_version: str


META_FILE = "annotate_meta.json"


def pipeline_sha256(path: str | Path) -> str:
    """A model's identity: a hash of a saved pipeline's files (names and bytes), our meta file excluded.

    The one hash everywhere: ``annotate train`` prints it, ``annotate_meta.json`` records it as
    ``model_sha256``, and Label Studio shows its first 12 digits in the model version.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != META_FILE):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def model_version(model_dir: Path) -> str:
    """The folder name plus the model's hash (:func:`pipeline_sha256`): a retrained model gets a new version."""
    return f"{Path(model_dir).resolve().name}-{pipeline_sha256(model_dir)[:12]}"


def load_predictor(model_dir: Path, schema: Schema) -> Predictor:
    """Load a saved pipeline (``spacy.load``); its spans under ``sc`` are the predictions."""
    import spacy

    from annotate.convert import SPAN_KEY
    from annotate.errors import InputError

    model_dir = Path(model_dir)
    if not (model_dir / "config.cfg").is_file():
        raise InputError(f"{model_dir}: not a saved spaCy pipeline (no config.cfg)")
    try:
        nlp = spacy.load(model_dir)
    except (OSError, ValueError) as exc:
        raise InputError(f"{model_dir}: cannot load the pipeline ({exc})") from None

    def predict(texts: list[str]) -> list[list[tuple[Span, float]]]:
        found = []
        for doc in nlp.pipe(texts):
            group = doc.spans.get(SPAN_KEY, [])
            scores = list(group.attrs.get("scores", [])) if hasattr(group, "attrs") else []
            spans = []
            for number, span in enumerate(group):
                if span.label_ not in schema:
                    raise InputError(f"{model_dir}: the model predicts label {span.label_!r}, not in the schema")
                score = float(scores[number]) if number < len(scores) else 1.0
                spans.append((Span.from_offsets(doc.text, span.start_char, span.end_char, span.label_), score))
            found.append(spans)
        return found

    return Predictor(predict, model_version(model_dir))
