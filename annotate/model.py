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
import itertools
import json
import platform
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from annotate import lsformat
from annotate.errors import InputError, TrainingError
from annotate.labels import Schema
from annotate.records import MAX_TEXT_CHARS, AnnotatedDoc, Span, text_problem

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

Item = TypeVar("Item")
META_FILE = "annotate_meta.json"
# Words a pipeline holds at once: spancat scores every candidate of a batch together, ~30 KB per word
# measured with the project's model, so 10,000 words stay near 0.3 GB whatever the batch's article count.
BATCH_WORDS = 10_000


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


def newest_trained(folder: str | Path) -> Path | None:
    """The newest model ``annotate train`` finished in ``folder`` (by its recorded ``trained_at``); None if none.

    A model counts once its ``annotate_meta.json`` records its identity: training writes that file
    last, so a folder left by a failed or interrupted training never counts.
    """
    found = []
    for child in Path(folder).iterdir() if Path(folder).is_dir() else ():
        meta = read_meta(child)
        if (child / "config.cfg").is_file() and isinstance(meta.get("model_sha256"), str):
            found.append((str(meta.get("trained_at") or ""), child.stat().st_mtime, child.name, child))
    return max(found)[3] if found else None


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


def words(text: str) -> int:
    """How much a text weighs in a batch: its whitespace-separated words (at least 1)."""
    return max(1, len(text.split()))


def word_batches(
    items: Iterable[Item], text_of: Callable[[Item], str], max_words: int | None = None
) -> Iterator[list[Item]]:
    """``items`` in order, cut into lists of at most ``max_words`` words; a longer item goes alone.

    Read lazily, so a stream of any length is held one batch at a time. ``max_words`` defaults to
    ``BATCH_WORDS``.
    """
    max_words = BATCH_WORDS if max_words is None else max_words
    if max_words < 1:
        raise InputError(f"a batch must hold at least 1 word, not {max_words}")
    return weighed_batches(items, lambda item: words(text_of(item)), max_words)


def weighed_batches(items: Iterable[Item], weight: Callable[[Item], int], limit: int) -> Iterator[list[Item]]:
    """``items`` in order, cut into lists weighing at most ``limit`` together; a heavier item goes alone. Lazy."""
    batch: list[Item] = []
    held = 0
    for item in items:
        heft = weight(item)
        if batch and held + heft > limit:
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += heft
    if batch:
        yield batch


def pipe_in_word_batches(nlp: Language, texts: Iterable[str], max_words: int | None = None) -> Iterator[Doc]:
    """``nlp.pipe`` over batches of at most ``max_words`` words, never spaCy's default of 1,000 docs at once."""
    for batch in word_batches(texts, str, max_words):
        yield from nlp.pipe(batch, batch_size=len(batch))


def predict(nlp: Language, docs: Sequence[AnnotatedDoc], source: str) -> list[AnnotatedDoc]:
    """Run a pipeline over gold articles; the result is in gold format with the predicted spans."""
    parsed = pipe_in_word_batches(nlp, (doc.text for doc in docs))
    return [with_predictions(annotated, doc, source) for annotated, doc in zip(docs, parsed, strict=True)]


# --- a predictor: texts in, scored spans out ------------------------------------------------------


@dataclass(frozen=True)
class Predictor:
    """A saved pipeline as texts → spans with scores: what push, the ML backend, refresh and ``apply`` call.

    Every text passes :func:`guarded_texts` first, so each of them answers alike for the same article.
    Both callables hold at most ``BATCH_WORDS`` words of text in the pipeline at once (or the
    ``batch_words`` given), so memory does not grow with the number of texts asked for.
    """

    predict: Callable[[list[str]], list[list[tuple[Span, float]]]]
    model_version: str
    # The same spans as ``predict``, streamed: ``stream(texts, n_process=…, batch_size=…, batch_words=…)``.
    stream: Callable[..., Iterator[list[tuple[Span, float]]]] | None = None


def guarded_texts(texts: Iterable[str], pending: deque[bool]) -> Iterator[str]:
    """The texts a pipeline may see, in order; ``pending`` records, per text, whether it was passed on.

    The one guard before ``nlp.pipe``: a text with nothing but whitespace is not passed on (its
    answer is no spans; a batch of them only would crash spancat), a text with a lone surrogate or
    over :data:`~annotate.records.MAX_TEXT_CHARS` characters is refused (InputError naming its place
    in the stream: the article readers refuse such a text first, the ML backend answers 422).
    """
    for number, text in enumerate(texts, start=1):
        if not isinstance(text, str):
            raise InputError(f"text {number}: not a string ({type(text).__name__})")
        problem = text_problem(text)
        if problem:
            raise InputError(f"text #{number} of the batch: {problem.removeprefix('text ')}")
        passed = bool(text.strip())
        pending.append(passed)
        if passed:
            yield text


def _merged(pending: deque[bool], found: Iterator) -> Iterator:
    """The pipeline's answers with ``None`` in the place of each text the guard kept from it, in input order."""
    while True:
        try:
            answer = next(found)
        except StopIteration:
            break
        while not pending[0]:  # texts held back before this one: read by the pipe's look-ahead
            pending.popleft()
            yield None
        pending.popleft()
        yield answer
    while pending:
        pending.popleft()
        yield None


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


def task_text(task: Mapping, number: int) -> str:
    """The article text of one Label Studio task (``data.text``, as push imports it)."""
    data = task.get("data")
    text = data.get("text") if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        raise InputError(f"task {task.get('id', f'#{number}')} has no text (data.text)")
    return text


def predict_tasks(predictor: Predictor, tasks: Sequence[Mapping]) -> list[dict]:
    """One Label Studio prediction per task, in order, each with the task-level score and model version."""
    texts = [task_text(task, number) for number, task in enumerate(tasks)]
    return [label_studio_prediction(spans, predictor.model_version) for spans in predictor.predict(texts)]


def load_predictor(model_dir: str | Path, schema: Schema) -> Predictor:
    """Load a saved pipeline (:func:`load_pipeline`) as a predictor; a label outside ``schema`` stops the prediction."""
    nlp = load_pipeline(model_dir)
    nlp.max_length = MAX_TEXT_CHARS  # what the readers take; longer is refused by the guard, not by spaCy (E088)
    known = frozenset(schema.names)

    def parsed_in_word_batches(
        texts: Iterable[str], n_process: int, batch_size: int | None, batch_words: int | None
    ) -> Iterator[tuple[Doc, str]]:
        batch_words = BATCH_WORDS if batch_words is None else batch_words
        # One process: every batch is cut by words. Several: spaCy cuts the batches by count, so the
        # count is the word budget over the first batch's mean length (capped by ``batch_size``).
        if n_process == 1:
            for batch in word_batches(texts, str, batch_words):
                if batch_size is not None and batch_size < len(batch):
                    parts = [batch[start : start + batch_size] for start in range(0, len(batch), batch_size)]
                else:
                    parts = [batch]
                for part in parts:
                    yield from nlp.pipe(((text, text) for text in part), as_tuples=True, batch_size=len(part))
            return
        texts = iter(texts)
        first: list[str] = []
        held = 0
        for text in texts:
            first.append(text)
            held += words(text)
            if held >= batch_words:
                break
        per_batch = max(1, batch_words * len(first) // max(1, held))
        pairs = ((text, text) for text in itertools.chain(first, texts))
        size = min(per_batch, batch_size or per_batch)
        yield from nlp.pipe(pairs, as_tuples=True, n_process=n_process, batch_size=size)

    def stream(
        texts: Iterable[str], *, n_process: int = 1, batch_size: int | None = None, batch_words: int | None = None
    ) -> Iterator[list[tuple[Span, float]]]:
        # Each text travels with its doc (spaCy's as_tuples), so a stream is read once, in batches.
        pending: deque[bool] = deque()
        parsed = parsed_in_word_batches(guarded_texts(texts, pending), n_process, batch_size, batch_words)
        for answer in _merged(pending, parsed):
            if answer is None:
                yield []
                continue
            doc, text = answer
            spans = scored_spans(doc, text)
            unknown = next((span.label for span, _ in spans if span.label not in known), None)
            if unknown is not None:
                raise InputError(f"{model_dir}: the model predicts label {unknown!r}, not in the schema")
            yield spans

    def predict_texts(texts: list[str]) -> list[list[tuple[Span, float]]]:
        return list(stream(texts))

    return Predictor(predict_texts, model_version(model_dir), stream)


# --- a saved model as plain data: what a worker process loads once and predicts pages of tasks with --------


@dataclass(frozen=True)
class SavedModel:
    """A saved pipeline named by its folder and schema: plain data that pickles into worker processes."""

    model_dir: Path
    schema: Schema

    @property
    def version(self) -> str:
        return model_version(self.model_dir)


_LOADED: dict[tuple[str, str], Predictor] = {}  # the one predictor a (worker) process holds, by folder and schema


def loaded_predictor(model: SavedModel) -> Predictor:
    """``model``'s predictor, loaded once per process (a worker of a pool keeps it for every page it is given)."""
    key = (str(Path(model.model_dir).resolve()), model.schema.sha256)
    predictor = _LOADED.get(key)
    if predictor is None:
        _LOADED.clear()  # one model per process: a worker given another model lets the first go
        predictor = _LOADED[key] = load_predictor(model.model_dir, model.schema)
    return predictor


def predict_page(model: SavedModel, tasks: Sequence[Mapping]) -> list[dict]:
    """One Label Studio prediction per task (:func:`predict_tasks`) with ``model`` loaded once in this process.

    A module-level function of plain arguments, so a local process pool or a Ray task can run it.
    """
    return predict_tasks(loaded_predictor(model), tasks)
