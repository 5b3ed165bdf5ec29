"""Gold and pulled annotations on disk: checked JSONL lines, reading and writing gold, atomic writes.

No network and no NLP here. Everything that writes goes through :func:`atomic_write_bytes`,
so a crash or a bad input never leaves a saved file half-written. Articles to label are read
by :mod:`annotate.articles`, with the same line rules (:func:`json_object`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from annotate.errors import InputError
from annotate.records import AnnotatedDoc, PulledAnnotation
from annotate.targets import check_file_target, os_reason, path_kind, read_bytes, write_files


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``mode`` sets the file's permissions (e.g. 0o600 for secrets); by default an existing file
    keeps its own and a new one follows the umask, as if written in place. A symbolic link, a
    folder, a device or a path under a regular file is refused (:mod:`annotate.targets`).
    """
    write_files([(path, data)], mode)


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, encode_text(text, str(path)), mode)


def encode_text(text: str, where: str) -> bytes:
    """UTF-8 bytes of ``text``; a lone surrogate (not valid Unicode) is an InputError, not a traceback."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{where}: text holds a lone surrogate {text[exc.start]!r} (not valid Unicode)") from None


def decode_utf8(raw: bytes) -> str:
    """UTF-8 bytes as every reader here sees them: a leading byte-order mark dropped, CRLF read as LF.

    Raises UnicodeDecodeError, which each reader reports with its own position.
    """
    return raw.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")


def _decode(raw: bytes, where: str) -> str:
    try:
        return decode_utf8(raw)
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not valid UTF-8 (byte {exc.start})") from None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """JSON objects with a key written twice are refused: json would silently keep the last one."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return record


class _DuplicateKey(ValueError):
    pass


def json_object(line: str) -> tuple[dict, str]:
    """One JSONL line as an object, or ``({}, reason)``: no key twice, not nested past Python's limit, no lone
    surrogates. Every reader of JSONL here (articles, gold, pulled, patterns) applies these rules."""
    try:
        record = json.loads(line, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        return {}, f"key {exc.args[0]!r} appears twice in one object"
    except json.JSONDecodeError as exc:
        return {}, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return {}, "JSON nested too deeply"
    if not isinstance(record, dict):
        return {}, "expected a JSON object per line"
    try:
        if _SURROGATE_ESCAPE.search(line):  # decoded UTF-8 has none: only a \\uD800-style escape makes one
            json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return {}, f"holds a lone surrogate {exc.object[exc.start]!r} (not valid Unicode)"
    except RecursionError:
        return {}, "JSON nested too deeply"
    return record, ""


def _json_object(line: str, where: str) -> dict:
    record, problem = json_object(line)
    if problem:
        raise InputError(f"{where}: {problem}")
    return record


def jsonl_records(path: str | Path, what: str = "JSONL file") -> list[tuple[str, dict]]:
    """Every non-blank line of a JSONL file as ``(file:line, object)``, checked as every reader here checks them."""
    path = Path(path)
    lines = _decode(read_bytes(path, what), str(path)).split("\n")
    return [(f"{path}:{n}", _json_object(line, f"{path}:{n}")) for n, line in enumerate(lines, start=1) if line.strip()]


def gold_files(path: str | Path) -> list[Path]:
    """The JSONL files a gold path names: the file itself, or every ``*.jsonl`` in a folder."""
    path = Path(path)
    kind = path_kind(path)
    if kind == "folder":
        try:
            files = sorted(p for p in path.glob("*.jsonl") if path_kind(p) == "file")
        except OSError as exc:
            raise InputError(f"{path}: cannot list this folder ({os_reason(exc)})") from None
        if not files:
            raise InputError(f"{path}: no .jsonl gold files in this folder")
        return files
    if kind != "file":
        raise InputError(f"{path}: no such gold file" if kind == "missing" else f"{path}: not a regular file")
    return [path]


def _string(record: dict, key: str, where: str, *, required: bool = True, empty: bool = False) -> None:
    """``record[key]`` must be a string (non-empty unless ``empty``); optional keys may be absent."""
    if key not in record and not required:
        return
    value = record.get(key)
    if not isinstance(value, str):
        raise InputError(f"{where}: '{key}' missing or not a string")
    if not empty and not value:
        raise InputError(f"{where}: '{key}' is empty")


def _offset(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_spans(spans: object, where: str) -> None:
    if not isinstance(spans, list):
        raise InputError(f"{where}: 'spans' missing or not a list")
    for index, span in enumerate(spans):
        if not isinstance(span, dict) or not all(k in span for k in ("start", "end", "label", "text")):
            raise InputError(f"{where}: span #{index} needs start, end, label and text")
        if not all(_offset(span[k]) for k in ("start", "end")):
            raise InputError(f"{where}: span #{index} start and end must be integers")
        if not isinstance(span["label"], str) or not span["label"]:
            raise InputError(f"{where}: span #{index} label must be a non-empty string")
        if not isinstance(span["text"], str):
            raise InputError(f"{where}: span #{index} text must be a string")


def gold_record(record: dict, where: str) -> AnnotatedDoc:
    """One gold (or predictions) line, checked for structure: what every command that reads gold accepts."""
    _string(record, "id", where)
    _string(record, "text", where)
    for key in ("annotator", "source", "text_sha256"):
        _string(record, key, where, required=False, empty=True)
    _check_spans(record.get("spans"), where)
    return AnnotatedDoc.from_dict(record)


def read_gold_located(path: str | Path) -> list[tuple[str, AnnotatedDoc]]:
    """Read gold JSONL with each document's ``file:line``, for problems that point at it."""
    located = []
    for file in gold_files(path):
        located.extend((where, gold_record(record, where)) for where, record in jsonl_records(file, "gold file"))
    return located


def read_gold(path: str | Path) -> list[AnnotatedDoc]:
    """Read gold JSONL (a file or a folder of them). Structure errors name file and line."""
    return [doc for _, doc in read_gold_located(path)]


def gold_jsonl(docs: Iterable[AnnotatedDoc]) -> str:
    """The canonical serialization: one article per line, sorted by id, spans sorted."""
    lines = [json.dumps(doc.to_dict(), ensure_ascii=False) for doc in sorted(docs, key=lambda d: d.id)]
    return "".join(line + "\n" for line in lines)


def write_gold(path: str | Path, docs: Iterable[AnnotatedDoc]) -> str:
    """Write gold atomically; returns the gold hash of what was written."""
    text = gold_jsonl(docs)
    atomic_write_text(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def gold_sha256(docs: Iterable[AnnotatedDoc]) -> str:
    """A hash of the gold's canonical form: what models and reports record as their data."""
    return hashlib.sha256(gold_jsonl(docs).encode("utf-8")).hexdigest()


def write_pulled(path: str | Path, annotations: Iterable[PulledAnnotation]) -> None:
    """Write every pulled annotation (all annotators, cancelled ones too) as JSONL, atomically."""
    ordered = sorted(annotations, key=lambda a: (a.doc_id, a.task_id, a.annotation_id))
    atomic_write_text(path, "".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n" for a in ordered))


_PULLED_FIELDS = {
    "task_id": "integer",
    "annotation_id": "integer",
    "doc_id": "string",
    "annotator": "string",
    "ground_truth": "boolean",
    "was_cancelled": "boolean",
    "created_at": "string",
    "updated_at": "string",
    "text_sha256": "string",
}


def _pulled_record(record: dict, where: str) -> PulledAnnotation:
    """Checked, never coerced: ``"false"`` is not a boolean and ``3.0`` is not an offset."""
    kinds = {"integer": _offset, "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool)}
    for key, kind in _PULLED_FIELDS.items():
        required = key in ("task_id", "annotation_id", "doc_id", "annotator")
        if key not in record and not required:
            continue
        if not kinds[kind](record.get(key)):
            raise InputError(f"{where}: '{key}' missing or not a {kind}")
    if not record["doc_id"]:
        raise InputError(f"{where}: 'doc_id' is empty")
    _check_spans(record.get("spans", []), where)
    return PulledAnnotation.from_dict(record)


def check_pull_targets(
    pulled_path: str | Path, gold_path: str | Path, snapshot: str | Path, *others: str | Path
) -> None:
    """Before a pull exports anything: every file it will write is absent or one that pull wrote.

    ``others`` (the acceptance figures) are files pull replaces as they are, never a link or folder.
    """
    check_file_target(pulled_path, recognise=is_pulled_file, what="file of pulled annotations", force_flag=None)
    check_file_target(gold_path, recognise=is_gold_file, what="gold file", force_flag=None)
    for path in (snapshot, *others):
        check_file_target(path)


def write_pulled_and_gold(
    pulled_path: str | Path,
    annotations: Iterable[PulledAnnotation],
    gold_path: str | Path,
    docs: Iterable[AnnotatedDoc],
    snapshot: tuple[str | Path, bytes] | None = None,
    others: Sequence[tuple[str | Path, str]] = (),
) -> str:
    """Write both files (and the raw export's ``snapshot``, path and bytes, and ``others``, path and
    text) or none of them (:func:`annotate.targets.write_files`); returns the gold hash."""
    ordered = sorted(annotations, key=lambda a: (a.doc_id, a.task_id, a.annotation_id))
    pulled = "".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n" for a in ordered)
    gold = gold_jsonl(docs)
    writes = [(pulled_path, encode_text(pulled, str(pulled_path))), (gold_path, encode_text(gold, str(gold_path)))]
    writes += [(path, encode_text(text, str(path))) for path, text in others]
    write_files(([snapshot] if snapshot is not None else []) + writes)
    return hashlib.sha256(gold.encode("utf-8")).hexdigest()


def read_pulled(path: str | Path) -> list[PulledAnnotation]:
    """Read what :func:`write_pulled` wrote; structure errors name file and line."""
    path = Path(path)
    if path_kind(path) != "file":
        raise InputError(f"{path}: no such file of pulled annotations")
    return [_pulled_record(record, where) for where, record in jsonl_records(path, "pulled file")]


def jsonl_with_keys(*keys: str):
    """A recogniser for :func:`annotate.targets.check_file_target`: every line a JSON object holding ``keys``.

    An empty file counts (a command writes one when it has nothing to list).
    """

    def recognise(path: Path) -> bool:
        lines = _decode(read_bytes(path), str(path)).split("\n")
        return all(set(keys) <= set(_json_object(line, str(path))) for line in lines if line.strip())

    return recognise


def json_with_keys(*keys: str):
    """A recogniser: the file is one JSON object holding ``keys``."""

    def recognise(path: Path) -> bool:
        record = json.loads(_decode(read_bytes(path), str(path)))
        return isinstance(record, dict) and set(keys) <= set(record)

    return recognise


is_gold_file = jsonl_with_keys("id", "text", "spans")
is_pulled_file = jsonl_with_keys("task_id", "annotation_id", "doc_id", "annotator")
