"""Publishing the gold set as a Hugging Face dataset: two views, document-level splits and a card.

The only module that imports ``datasets``. People who reuse the data load it with
``datasets.load_dataset(folder)`` and nothing of ours, so everything a reader needs (features,
splits, label meanings, how the tag columns work, provenance) goes into the files themselves.

- ``spans`` view: one row per article, its spans as a list of ``{start, end, label, text}``;
  overlapping spans are kept as they are.
- ``tokens`` view: spaCy tokens and BIO tags, one ``List(ClassLabel)`` column per label.
  BIO cannot hold two overlapping spans in one column, so each label gets its own column, and a
  label whose spans overlap each other gets extra layer columns. No span is lost in either view.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import huggingface_hub
import spacy
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData
from spacy.language import Language
from spacy.training import biluo_to_iob, iob_to_biluo, offsets_to_biluo_tags, tags_to_entities

from annotate import privacy
from annotate.agreement import AGREEMENT_SHAPE, JSON_SCHEMA_VERSION
from annotate.artifacts import Maybe, read_artifact, shape_problem
from annotate.card import CARD_MARKER, CardFacts, card_body
from annotate.corpus import gold_files, gold_sha256
from annotate.errors import GoldError, HubError, PublishError
from annotate.gold import inspect_gold
from annotate.labels import Schema
from annotate.records import AnnotatedDoc, Span, text_sha256
from annotate.targets import check_folder_target

SPANS = "spans"
TOKENS = "tokens"
VIEWS = (SPANS, TOKENS)
MIN_ARTICLES_FOR_TRAIN_SPLITS = 20
MAX_FOLDS = 5
_EMPTY_TAG = "O"


# ---------------------------------------------------------------------------------------------
# Splits


@dataclass(frozen=True)
class SplitPlan:
    """Which articles go in which split, and the cross-validation folds, for one seed."""

    seed: int
    splits: dict[str, list[str]]
    folds: list[list[str]]
    reason: str

    def fold_train(self, index: int) -> list[str]:
        return sorted(doc_id for number, fold in enumerate(self.folds) if number != index for doc_id in fold)


def plan_splits(doc_ids: Iterable[str], seed: int = 0) -> SplitPlan:
    """Document-level splits and folds: the same ids and seed always give the same plan.

    Below :data:`MIN_ARTICLES_FOR_TRAIN_SPLITS` articles a held-out split of one or two articles
    would measure which article was drawn more than the model, so every article goes in ``test``
    and evaluation uses the folds (leave-one-article-out up to :data:`MAX_FOLDS` articles).
    """
    order = sorted(set(doc_ids))
    random.Random(seed).shuffle(order)
    count = len(order)
    folds = [
        sorted(order[index :: MAX_FOLDS if count > MAX_FOLDS else count]) for index in range(min(count, MAX_FOLDS))
    ]
    if count < 2:
        folds = []
    if count < MIN_ARTICLES_FOR_TRAIN_SPLITS:
        reason = (
            f"With {count} article{'s' if count != 1 else ''}, a train/validation/test split would hold out "
            "one or two articles, "
            "and scores on them would say more about which article was drawn than about a model. "
            f"So all {count} are published as a single `test` split, and the cross-validation folds below "
            "(each article is the test set of exactly one fold) are the honest way to train and evaluate. "
            f"`annotate publish` switches to train/validation/test (80/10/10) from {MIN_ARTICLES_FOR_TRAIN_SPLITS} "
            "articles on."
        )
        return SplitPlan(seed, {"test": sorted(order)}, folds, reason)
    held_out = max(1, round(count * 0.1))
    splits = {
        "train": sorted(order[2 * held_out :]),
        "validation": sorted(order[held_out : 2 * held_out]),
        "test": sorted(order[:held_out]),
    }
    reason = (
        f"{count} articles, shuffled with seed {seed} and split by article (never by sentence, so no article "
        "contributes to two splits): about 80% train, 10% validation, 10% test."
    )
    return SplitPlan(seed, splits, folds, reason)


# ---------------------------------------------------------------------------------------------
# The two views


def tag_column(label: str, layer: int) -> str:
    """``actor_tags`` for a label's first layer, ``actor_tags_2`` for spans overlapping those, …"""
    base = f"{label.lower()}_tags"
    return base if layer == 0 else f"{base}_{layer + 1}"


def tag_names(label: str) -> list[str]:
    return [_EMPTY_TAG, f"B-{label}", f"I-{label}"]


def span_layers(spans: Iterable[Span]) -> list[list[Span]]:
    """Spans of one label dealt into as few layers as possible, none overlapping within a layer.

    Sorted by start (longest first), each span goes into the first layer it fits; for intervals
    this greedy deal needs exactly as many layers as the deepest overlap.
    """
    layers: list[list[Span]] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end, s.label)):
        for layer in layers:
            if layer[-1].end <= span.start:
                layer.append(span)
                break
        else:
            layers.append([span])
    return layers


def layer_counts(docs: Iterable[AnnotatedDoc], schema: Schema) -> dict[str, int]:
    """How many tag columns each label needs across the corpus (at least one)."""
    counts = dict.fromkeys(schema.names, 1)
    for doc in docs:
        for label in schema.names:
            counts[label] = max(counts[label], len(span_layers(s for s in doc.spans if s.label == label)))
    return counts


def spans_features(schema: Schema, *, include_text: bool = True) -> Features:
    span = {"start": Value("int32"), "end": Value("int32"), "label": ClassLabel(names=schema.names)}
    if include_text:
        span["text"] = Value("string")
    columns = {"id": Value("string")}
    if include_text:
        columns["text"] = Value("string")
    columns |= {
        "text_sha256": Value("string"),
        "annotator": Value("string"),
        "source": Value("string"),
        "spans": List(span),
    }
    return Features(columns)


def tokens_features(schema: Schema, layers: dict[str, int], *, include_text: bool = True) -> Features:
    columns = {"id": Value("string"), "text_sha256": Value("string")}
    if include_text:
        columns["tokens"] = List(Value("string"))
    columns |= {"token_start": List(Value("int32")), "token_end": List(Value("int32"))}
    for label in schema.names:
        for layer in range(layers[label]):
            columns[tag_column(label, layer)] = List(ClassLabel(names=tag_names(label)))
    return Features(columns)


def spans_row(doc: AnnotatedDoc, *, include_text: bool = True) -> dict:
    spans = [span.to_dict() for span in doc.spans]
    if not include_text:
        spans = [{key: value for key, value in span.items() if key != "text"} for span in spans]
    row = {"id": doc.id}
    if include_text:
        row["text"] = doc.text
    row |= {"text_sha256": doc.text_sha256, "annotator": doc.annotator, "source": doc.source, "spans": spans}
    return row


def tokens_row(doc: AnnotatedDoc, nlp: Language, layers: dict[str, int], *, include_text: bool = True) -> dict:
    """Tokens from ``nlp``'s tokenizer and BIO tags from spaCy's own ``offsets_to_biluo_tags``."""
    tokens = nlp.make_doc(doc.text)
    row: dict = {"id": doc.id, "text_sha256": doc.text_sha256}
    if include_text:
        row["tokens"] = [token.text for token in tokens]
    row["token_start"] = [token.idx for token in tokens]
    row["token_end"] = [token.idx + len(token) for token in tokens]
    by_label: dict[str, list[Span]] = defaultdict(list)
    for span in doc.spans:
        by_label[span.label].append(span)
    for label, needed in layers.items():
        dealt = span_layers(by_label[label])
        for layer in range(needed):
            spans = dealt[layer] if layer < len(dealt) else []
            biluo = offsets_to_biluo_tags(tokens, [(span.start, span.end, span.label) for span in spans])
            if "-" in biluo:
                span = next(s for s in spans if tokens.char_span(s.start, s.end) is None)
                raise PublishError(
                    f"{doc.id}: {span.describe()}: edges are not on spaCy token boundaries; run `annotate gold check`"
                )
            row[tag_column(label, layer)] = biluo_to_iob(biluo)
    return row


def build_views(
    docs: Sequence[AnnotatedDoc],
    schema: Schema,
    nlp: Language,
    plan: SplitPlan,
    *,
    include_text: bool = True,
) -> dict[str, DatasetDict]:
    """Both views as ``DatasetDict`` objects with one split per entry of ``plan.splits``."""
    by_id = {doc.id: doc for doc in docs}
    layers = layer_counts(docs, schema)
    features = {
        SPANS: spans_features(schema, include_text=include_text),
        TOKENS: tokens_features(schema, layers, include_text=include_text),
    }
    views: dict[str, DatasetDict] = {}
    for view in VIEWS:
        splits = {}
        for split, doc_ids in plan.splits.items():
            if view == SPANS:
                rows = [spans_row(by_id[doc_id], include_text=include_text) for doc_id in doc_ids]
            else:
                rows = [tokens_row(by_id[doc_id], nlp, layers, include_text=include_text) for doc_id in doc_ids]
            splits[split] = Dataset.from_list(rows, features=features[view], split=datasets.NamedSplit(split))
        views[view] = DatasetDict(splits)
    return views


def spans_from_spans_row(row: dict, features: Features, text: str | None = None) -> list[Span]:
    """The gold spans of one ``spans`` row; ``text`` is the article, needed when published without text."""
    text = row.get("text", text)
    labels = features["spans"].feature["label"]
    found = []
    for span in row["spans"]:
        start, end, label = span["start"], span["end"], labels.int2str(span["label"])
        found.append(
            Span(start, end, label, span["text"]) if "text" in span else Span.from_offsets(text, start, end, label)
        )
    return sorted(found)


def spans_from_tokens_row(row: dict, features: Features, text: str) -> list[Span]:
    """The gold spans of one ``tokens`` row, decoded with spaCy's ``iob_to_biluo``/``tags_to_entities``."""
    found = []
    for column, feature in features.items():
        inner = getattr(feature, "feature", None)
        if not isinstance(inner, ClassLabel):
            continue
        tags = [inner.int2str(tag) for tag in row[column]]
        for label, first, last in tags_to_entities(iob_to_biluo(tags)):
            found.append(Span.from_offsets(text, row["token_start"][first], row["token_end"][last], label))
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# The dataset card


def size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "1M<n<10M"


def card_metadata(facts: CardFacts, views: dict[str, DatasetDict], files: dict[str, dict[str, str]]) -> str:
    """The YAML header the Hub reads: licence, language, configs with their data files, features."""
    article_count = len({doc_id for ids in facts.split_plan.splits.values() for doc_id in ids})
    data = DatasetCardData(
        license=facts.license,
        license_name="publishers-copyright-texts" if facts.license == "other" else None,
        language=[facts.language],
        pretty_name=facts.pretty_name,
        task_categories=["token-classification"],
        size_categories=[size_category(article_count)],
        tags=["news", "span-categorization", "annotation"],
    )
    MetadataConfigs(
        {
            view: {
                "data_files": [{"split": split, "path": path} for split, path in files[view].items()],
                **({"default": True} if view == SPANS else {}),
            }
            for view in VIEWS
        }
    ).to_dataset_card_data(data)
    infos = {}
    for view in VIEWS:
        splits = SplitDict()
        for split, dataset in views[view].items():
            splits.add(SplitInfo(name=split, num_bytes=dataset.data.nbytes, num_examples=len(dataset)))
        infos[view] = DatasetInfo(
            features=next(iter(views[view].values())).features,
            config_name=view,
            splits=splits,
            dataset_size=sum(split.num_bytes for split in splits.values()),
        )
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data.to_yaml()


# ---------------------------------------------------------------------------------------------
# Publishing


@dataclass(frozen=True)
class Published:
    """What ``publish`` wrote: the folder, its files, and the numbers the CLI reports."""

    out_dir: Path
    files: list[str]
    split_plan: SplitPlan
    span_counts: dict[str, Counter]
    gold_sha256: str
    date: str
    date_source: str


def publication_date(gold_path: str | Path, given: str | None = None) -> tuple[str, str]:
    """The card's date and where it came from, stable so that publishing twice gives the same bytes.

    In order: ``given``; ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention); the date of
    the last git commit of the gold when it is committed and unmodified; else the day the gold
    file was last modified. Never the clock, which would change the card on every run.
    """
    if given:
        try:
            return dt.date.fromisoformat(given).isoformat(), "given with --date"
        except ValueError:
            raise PublishError(f"--date {given!r}: expected a date like 2025-07-01") from None
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            stamp = dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc)
        except ValueError:
            raise PublishError(f"SOURCE_DATE_EPOCH={epoch!r}: expected seconds since 1970") from None
        return stamp.date().isoformat(), "SOURCE_DATE_EPOCH"
    gold_path = Path(gold_path)
    committed = _git_commit_date(gold_path)
    if committed:
        return committed, f"last git commit of {gold_path.name}"
    newest = max(file.stat().st_mtime for file in gold_files(gold_path))
    day = dt.datetime.fromtimestamp(newest, tz=dt.timezone.utc).date().isoformat()
    return day, f"modification time of {gold_path.name}, which has uncommitted changes or is not in git"


def _git_commit_date(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", path.name if path != folder else "."],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if status.returncode != 0 or status.stdout.strip():
            return ""
        log = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", path.name if path != folder else "."],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return log.stdout.strip() if log.returncode == 0 else ""


def _check_out_dir(out_dir: Path) -> None:
    """Publish only into an absent or empty folder, or one holding nothing but an earlier publish.

    Files the user added to an earlier publish (notes, a ``.git`` of the Hub clone) would be
    deleted by the swap, so they are refused too; see docs/safety.md.
    """
    check_folder_target(out_dir, marker=None, what="dataset folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        readme = out_dir / "README.md"
        if not (readme.is_file() and CARD_MARKER in readme.read_text(encoding="utf-8", errors="replace")):
            raise PublishError(
                f"{out_dir}: folder is not empty and was not written by `annotate publish`; "
                "choose a new or empty folder"
            )
        foreign = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in _PUBLISHED_ENTRIES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise PublishError(
                f"{out_dir}: holds files `annotate publish` did not write ({shown}), which replacing it would "
                "delete; move them away or publish into a new folder"
            )


_PUBLISHED_ENTRIES = {"README.md", "GUIDELINES.md", *VIEWS}


# Figures in another layout than annotate agreement's are shown as they are; what publish reads of them
# (the annotators, to replace their names) must still be a list of names.
_OTHER_AGREEMENT_SHAPE = {"annotators": Maybe([str])}


def _read_agreement(path: Path) -> dict:
    """Agreement figures for the card: annotate agreement's (``schema_version``) checked in full, others as they are."""
    figures = read_artifact(path, {}, "agreement figures (a JSON object)", error=PublishError)
    ours = "schema_version" in figures
    problem = shape_problem(figures, AGREEMENT_SHAPE if ours else _OTHER_AGREEMENT_SHAPE)
    if ours and not problem and figures["schema_version"] != JSON_SCHEMA_VERSION:
        problem = f"schema_version: expected {JSON_SCHEMA_VERSION}, found {figures['schema_version']}"
    if problem:
        what = "agreement figures of annotate agreement" if ours else "agreement figures publish can show"
        raise PublishError(f"{path}: not {what} ({problem}); write them with `annotate agreement … --json-out`")
    return figures


def publish(
    out_dir: str | Path,
    gold_path: str | Path,
    schema: Schema,
    nlp: Language,
    *,
    split_seed: int = 0,
    include_text: bool = True,
    guidelines_path: str | Path | None = None,
    agreement_path: str | Path | None = None,
    date: str | None = None,
    license: str = "other",
    pretty_name: str = "News spans",
    language: str = "en",
    real_names: bool = False,
    pseudonyms_path: str | Path | None = None,
) -> Published:
    """Check the gold, then write both views as parquet plus ``README.md`` into ``out_dir``.

    Everything is written into a temporary folder beside ``out_dir`` and renamed into place at the
    end, so a refused gold or a failure leaves ``out_dir`` as it was. An earlier output of this
    function in ``out_dir`` is replaced; any other non-empty folder is refused.

    Annotators (in the data and in the card's agreement figures) are published as pseudonyms
    (``annotator-1``, …) kept stable in ``pseudonyms_path`` (see :mod:`annotate.privacy`), unless
    ``real_names``.
    """
    out_dir = Path(out_dir)
    gold_path = Path(gold_path)
    _check_out_dir(out_dir)
    reading = inspect_gold(gold_path, schema, nlp)
    if reading.problems:
        raise GoldError(
            f"{gold_path}: {len(reading.problems)} problem(s) in the gold; fix them before publishing; "
            "nothing was written",
            reading.problems,
        )
    docs = sorted(reading.docs, key=lambda doc: doc.id)
    if not docs:
        raise PublishError(f"{gold_path}: the gold has no articles; nothing to publish")
    day, day_source = publication_date(gold_path, date)
    guidelines_text = None
    if guidelines_path is not None and Path(guidelines_path).is_file():
        guidelines_text = Path(guidelines_path).read_text(encoding="utf-8")
    agreement = _read_agreement(Path(agreement_path)) if agreement_path is not None else None
    sha = gold_sha256(docs)
    if not real_names:
        docs, agreement = _pseudonymous(docs, agreement, pseudonyms_path)
    plan = plan_splits((doc.id for doc in docs), split_seed)
    views = build_views(docs, schema, nlp, plan, include_text=include_text)
    layers = layer_counts(docs, schema)
    facts = CardFacts(
        pretty_name=pretty_name,
        language=language,
        license=license,
        date=day,
        date_source=day_source,
        gold_name=gold_path.name,
        gold_sha256=sha,
        schema=schema,
        split_plan=plan,
        include_text=include_text,
        views=(SPANS, TOKENS),
        libraries={"spaCy": spacy.__version__, "datasets": datasets.__version__},
        guidelines_text=guidelines_text,
        guidelines_sha256=text_sha256(guidelines_text) if guidelines_text is not None else "",
        agreement=agreement,
        agreement_name=Path(agreement_path).name if agreement_path is not None else "",
        tag_columns={name: [tag_column(name, layer) for layer in range(count)] for name, count in layers.items()},
        pseudonymous=not real_names,
    )
    files = {view: {split: f"{view}/{split}-00000-of-00001.parquet" for split in plan.splits} for view in VIEWS}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    staging.chmod(0o777 & ~_umask())
    try:
        for view in VIEWS:
            for split, dataset in views[view].items():
                target = staging / files[view][split]
                target.parent.mkdir(parents=True, exist_ok=True)
                with _no_progress_bars():
                    dataset.to_parquet(str(target))
        card = f"---\n{card_metadata(facts, views, files)}\n---\n\n{card_body(facts, docs)}"
        (staging / "README.md").write_text(card, encoding="utf-8")
        if guidelines_text is not None and include_text:
            (staging / "GUIDELINES.md").write_text(guidelines_text, encoding="utf-8")
        written = sorted(str(path.relative_to(staging)) for path in staging.rglob("*") if path.is_file())
        _swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    span_counts = {
        split: Counter(span.label for doc in docs if doc.id in ids for span in doc.spans)
        for split, ids in plan.splits.items()
    }
    return Published(out_dir, written, plan, span_counts, facts.gold_sha256, day, day_source)


def _pseudonymous(
    docs: list[AnnotatedDoc], agreement: dict | None, path: str | Path | None
) -> tuple[list[AnnotatedDoc], dict | None]:
    """The gold and the agreement figures with every annotator replaced by a stable pseudonym."""
    names = {name for doc in docs for name in doc.annotator.split(",")}  # adjudicated: "alice,bob"
    names |= set((agreement or {}).get("annotators") or [])
    for pair in (agreement or {}).get("pairs") or []:
        names.update(pair.get("annotators") or [] if isinstance(pair, dict) else [])
    names = {name for name in names if isinstance(name, str) and name}
    mapping = privacy.pseudonyms(names, Path(path)) if path is not None else privacy.extend_mapping({}, names)
    renamed = [
        replace(doc, annotator=",".join(mapping.get(name, name) for name in doc.annotator.split(","))) for doc in docs
    ]
    return renamed, privacy.replace_names(agreement, mapping) if agreement is not None else None


def _umask() -> int:
    """The process's umask (only readable by setting it), so the published folder gets normal permissions."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def _no_progress_bars():
    """Silence ``datasets``' and the Hub client's progress bars: library code does not print."""
    datasets_bars = datasets.is_progress_bar_enabled()
    hub_bars = not huggingface_hub.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    try:
        yield
    finally:
        if datasets_bars:
            datasets.enable_progress_bars()
        if hub_bars:
            huggingface_hub.utils.enable_progress_bars()


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished folder over ``out_dir``; an earlier output is moved aside, then removed."""
    previous = None
    if out_dir.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        previous.rmdir()
        out_dir.rename(previous)
    try:
        staging.rename(out_dir)
    except BaseException:
        if previous is not None:
            previous.rename(out_dir)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The Hub


def push_to_hub(out_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a published folder with ``datasets``' own ``push_to_hub``, then its card.

    Each view is loaded back from ``out_dir`` exactly as a user would (``load_dataset``) and
    pushed as its own configuration; the card written by :func:`publish` replaces the one
    ``datasets`` generates. The token comes from ``token`` or ``HF_TOKEN`` and is never shown.
    """
    out_dir = Path(out_dir)
    token = token or os.environ.get("HF_TOKEN", "")
    if not token:
        raise HubError(
            "HF_TOKEN is not set: create a write token at https://huggingface.co/settings/tokens and export it"
        )
    card = out_dir / "README.md"
    if not card.is_file():
        raise HubError(f"{out_dir}: no README.md here; run `annotate publish {out_dir}` first")
    endpoint = huggingface_hub.constants.ENDPOINT
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise HubError(
            f"push to {repo_id}: HF_HUB_OFFLINE is set, so the Hub is not contacted; the local copy is complete"
        )
    try:
        with _no_progress_bars():
            for view in VIEWS:
                dataset = datasets.load_dataset(str(out_dir), view)
                dataset.push_to_hub(
                    repo_id, config_name=view, data_dir=view, set_default=view == SPANS, private=private, token=token
                )
            DatasetCard(card.read_text(encoding="utf-8")).push_to_hub(repo_id, token=token, repo_type="dataset")
    except Exception as exc:
        raise HubError(_hub_failure(exc, repo_id, endpoint, token)) from None
    return f"{endpoint}/datasets/{repo_id}"


def _hub_failure(exc: Exception, repo_id: str, endpoint: str, token: str) -> str:
    chain = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    names = " ".join(type(error).__name__ for error in chain)
    if any(word in names for word in ("Connect", "Timeout", "Offline", "NetworkError", "gaierror")):
        reason = f"cannot reach the Hugging Face Hub at {endpoint} (no network, or HF_HUB_OFFLINE is set)"
    else:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            reason = f"the Hub refused the token in HF_TOKEN (HTTP {status}); it needs write access to {repo_id}"
        else:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = f"the Hub upload failed ({type(exc).__name__}: {message})"
    reason = reason.replace(token, "***")
    return f"push to {repo_id}: {reason}; the local copy is complete"
