"""A saved model, owned in one place: its identity, the one loader, and the one way spans leave a doc.

Everything that predicts goes through here (``push --predictions``, the ML backend, ``apply``,
``evaluate``, cross-validation, nested or not, and the learning curve), so a span Label Studio
shows, a span ``apply`` writes and a span ``evaluate`` scores are the same span, and a model has
the same hash and version wherever it is named. ``annotate train`` records both in
``annotate_meta.json``; readers take them from there, and compute them for folders saved before
that (or by other tools).

Nothing here imports spaCy until a pipeline is loaded or a doc is read, so the Label Studio
commands that only name a model stay quick to start.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from annotate import lsformat
from annotate.errors import InputError, TrainingError
from annotate.labels import Schema
from annotate.records import AnnotatedDoc, Span

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

META_FILE = "annotate_meta.json"


# --- identity -------------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    """Versions that decide what a model predicts and how it is scored, for provenance."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("spacy", "thinc", "numpy", "news-annotate"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def pipeline_sha256(path: str | Path) -> str:
    """A hash of a saved pipeline's files (names and bytes), our meta file excluded: the model's identity.

    ``annotate train`` computes it once, after saving, and records it in ``annotate_meta.json`` as
    ``model_sha256``; Label Studio shows its first 12 digits in the model version.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != META_FILE):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    """How every record names a saved model: the hash of its files and the version Label Studio shows.

    The version is the folder name at training time plus the hash's first 12 digits, so a model
    retrained into the same folder gets a new version, and a model keeps its version when moved.
    """

    sha256: str
    version: str

    def to_dict(self) -> dict[str, str]:
        """The keys ``annotate_meta.json`` and a report's provenance carry."""
        return {"model_sha256": self.sha256, "model_version": self.version}


def _version(model_dir: Path, sha256: str) -> str:
    return f"{Path(model_dir).resolve().name}-{sha256[:12]}"


def computed_identity(model_dir: str | Path) -> ModelIdentity:
    """The identity of the files as they are now: what ``annotate train`` records after saving."""
    digest = pipeline_sha256(model_dir)
    return ModelIdentity(digest, _version(Path(model_dir), digest))


def read_meta(model_dir: str | Path) -> dict:
    """A saved model's ``annotate_meta.json``; {} when it has none or it cannot be read (a pipeline from elsewhere)."""
    try:
        meta = json.loads((Path(model_dir) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def model_identity(model_dir: str | Path) -> ModelIdentity:
    """The identity ``annotate train`` recorded; computed when not recorded (a model saved before, or elsewhere)."""
    meta = read_meta(model_dir)
    recorded = meta.get("model_sha256")
    digest = recorded if isinstance(recorded, str) and len(recorded) == 64 else pipeline_sha256(model_dir)
    version = meta.get("model_version")
    return ModelIdentity(digest, version if isinstance(version, str) and version else _version(Path(model_dir), digest))


def model_version(model_dir: str | Path) -> str:
    """The version a model's predictions carry in Label Studio, in ``apply`` output and in reports."""
    return model_identity(model_dir).version


def training_articles(model_dir: str | Path) -> list[str]:
    """The ids of the articles a saved model was trained on (from its ``annotate_meta.json``; [] if unknown)."""
    articles = read_meta(model_dir).get("articles")
    return [str(doc_id) for doc_id in articles] if isinstance(articles, list) else []


# --- loading --------------------------------------------------------------------------------------


def one_line(exc: Exception) -> str:
    """spaCy's and thinc's multi-line messages as one line (title plus the first details)."""
    parts = [line.strip() for line in str(exc).splitlines() if line.strip() and not set(line.strip()) <= {"="}]
    return "; ".join(parts[:4])


def check_pipeline_folder(model_dir: str | Path) -> Path:
    """Refuse a folder that holds no saved pipeline, before any work is planned around it."""
    path = Path(model_dir)
    if not (path / "config.cfg").is_file():
        raise TrainingError(f"{path}: not a saved spaCy pipeline (no config.cfg); run `annotate train` first")
    return path


def load_pipeline(model_dir: str | Path) -> Language:
    """The one loader of a saved pipeline (``spacy.load``), with one error for a missing or broken folder."""
    import spacy

    path = check_pipeline_folder(model_dir)
    try:
        return spacy.load(path)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise TrainingError(f"{path}: cannot load the saved pipeline ({one_line(exc)})") from None


def pipeline_bytes(nlp: Language) -> tuple[str, bytes]:
    """A trained pipeline as (config, weights) to send between processes; :func:`pipeline_from_bytes` reads it back."""
    return nlp.config.to_str(), nlp.to_bytes()


def pipeline_from_bytes(config: str, data: bytes) -> Language:
    """The pipeline :func:`pipeline_bytes` sent, the same weights and vectors (a worker's trained model)."""
    from spacy.util import load_model_from_config
    from thinc.api import Config

    nlp = load_model_from_config(Config().from_str(config, interpolate=False), auto_fill=False, validate=False)
    return nlp.from_bytes(data)


# --- spans out of a doc ---------------------------------------------------------------------------


def scored_spans(doc: Doc, text: str | None = None) -> list[tuple[Span, float]]:
    """The one way predictions leave a doc: ``doc.spans["sc"]`` in order, each with its score.

    A span the pipeline gave no score (a rule's, a span ruler's) scores 1.0. Offsets are cut from
    ``text``, the input text (default ``doc.text``, which spaCy rebuilds from its tokens on every access).
    """
    from annotate.convert import SPAN_KEY

    group = doc.spans.get(SPAN_KEY)
    if group is None:
        return []
    scores = group.attrs.get("scores")
    scores = [] if scores is None else list(scores)
    text = doc.text if text is None else text
    return [
        (
            Span.from_offsets(text, span.start_char, span.end_char, span.label_),
            float(scores[number]) if number < len(scores) else 1.0,
        )
        for number, span in enumerate(group)
    ]


def spans_of(doc: Doc) -> tuple[Span, ...]:
    """The spans in ``doc.spans["sc"]`` as our records, without scores (duplicates removed, sorted)."""
    return tuple(sorted({span for span, _ in scored_spans(doc)}))


def with_predictions(annotated: AnnotatedDoc, doc: Doc, source: str) -> AnnotatedDoc:
    """The article as a gold-format record whose spans are what the pipeline predicted."""
    return AnnotatedDoc(annotated.id, annotated.text, spans_of(doc), annotator="", source=source)


def predict(nlp: Language, docs: Sequence[AnnotatedDoc], source: str) -> list[AnnotatedDoc]:
    """Run a pipeline over gold articles; the result is in gold format with the predicted spans."""
    return [
        with_predictions(annotated, parsed, source)
        for annotated, parsed in zip(docs, nlp.pipe(doc.text for doc in docs), strict=True)
    ]


# --- a predictor: texts in, scored spans out ------------------------------------------------------


@dataclass(frozen=True)
class Predictor:
    """A saved pipeline as texts → spans with scores: what push, the ML backend and ``apply`` call."""

    predict: Callable[[list[str]], list[list[tuple[Span, float]]]]
    model_version: str
    # The same spans as ``predict``, streamed: ``stream(texts, n_process=…, batch_size=…)`` (``apply``).
    stream: Callable[..., Iterator[list[tuple[Span, float]]]] | None = None


def task_score(scores: list[float]) -> float:
    """How sure the model is about a whole article: the score of its least certain span.

    A kept span scores at least the component's threshold, so an article whose weakest span sits
    just above it is the one an annotator should check first; an article with no span scores 1.0
    (nothing to correct). Label Studio's uncertainty sampling serves the lowest score first.
    """
    return round(min(scores, default=1.0), 4)


def label_studio_prediction(spans: list[tuple[Span, float]], version: str) -> dict:
    """One article's spans as a Label Studio prediction: what push imports and the ML backend answers."""
    scored = sorted(spans, key=lambda pair: pair[0])
    result = []
    for span, score in scored:
        region = lsformat.span_result(span)
        region["score"] = round(score, 4)
        result.append(region)
    return {"model_version": version, "score": task_score([score for _, score in spans]), "result": result}


def load_predictor(model_dir: str | Path, schema: Schema) -> Predictor:
    """Load a saved pipeline (:func:`load_pipeline`) as a predictor; a label outside ``schema`` stops the prediction."""
    nlp = load_pipeline(model_dir)
    known = frozenset(schema.names)

    def stream(
        texts: Iterable[str], *, n_process: int = 1, batch_size: int | None = None
    ) -> Iterator[list[tuple[Span, float]]]:
        # Each text travels with its doc (spaCy's as_tuples), so a stream is read once, in batches.
        pairs = ((text, text) for text in texts)
        for doc, text in nlp.pipe(pairs, as_tuples=True, n_process=n_process, batch_size=batch_size):
            spans = scored_spans(doc, text)
            unknown = next((span.label for span, _ in spans if span.label not in known), None)
            if unknown is not None:
                raise InputError(f"{model_dir}: the model predicts label {unknown!r}, not in the schema")
            yield spans

    def predict_texts(texts: list[str]) -> list[list[tuple[Span, float]]]:
        return list(stream(texts))

    return Predictor(predict_texts, model_version(model_dir), stream)
