"""The label schema, read from ``guidelines/labels.toml``, and everything generated from it.

One file defines the labels; the Label Studio config, spaCy's label list and the Hugging Face
``ClassLabel`` names are derived here so they can never drift apart.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from markdown_it import MarkdownIt

from annotate.corpus import atomic_write_text
from annotate.errors import SchemaError
from annotate.targets import check_file_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

FROM_NAME = "label"
TO_NAME = "text"
_LABEL_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class LabelDef:
    name: str
    definition: str
    colour: str
    hotkey: str


@dataclass(frozen=True)
class Schema:
    labels: tuple[LabelDef, ...]
    path: str = ""
    sha256: str = ""

    @property
    def names(self) -> list[str]:
        """Label names in schema order (the ClassLabel index order)."""
        return [label.name for label in self.labels]

    def __contains__(self, name: object) -> bool:
        return name in self.names


def load_schema(path: str | Path) -> Schema:
    """Read and check the schema file; every problem names the file and the label."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the label schema ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise SchemaError(f"{path}: TOML nested too deeply") from None
    entries = data.get("label")
    if not isinstance(entries, list) or not entries:
        raise SchemaError(f"{path}: no [[label]] entries")
    labels: list[LabelDef] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise SchemaError(f"{path}: label #{number} is not a table")
        missing = [key for key in ("name", "definition", "colour", "hotkey") if not entry.get(key)]
        if missing:
            raise SchemaError(f"{path}: label #{number} lacks {', '.join(missing)}")
        wrong = [key for key in ("name", "definition", "colour", "hotkey") if not isinstance(entry[key], str)]
        if wrong:
            raise SchemaError(f"{path}: label #{number}: {', '.join(wrong)} must be text (in quotes)")
        label = LabelDef(*(str(entry[key]).strip() for key in ("name", "definition", "colour", "hotkey")))
        if not _LABEL_NAME.match(label.name):
            raise SchemaError(f"{path}: label name {label.name!r} must be upper-case letters, digits, _")
        if not _COLOUR.match(label.colour):
            raise SchemaError(f"{path}: label {label.name}: colour {label.colour!r} is not #rrggbb")
        if len(label.hotkey) != 1:
            raise SchemaError(f"{path}: label {label.name}: hotkey {label.hotkey!r} must be one key")
        labels.append(label)
    for attribute in ("name", "hotkey"):
        values = [getattr(label, attribute) for label in labels]
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise SchemaError(f"{path}: duplicate label {attribute} {', '.join(duplicates)}")
    return Schema(tuple(labels), str(path), hashlib.sha256(raw).hexdigest())


def label_studio_config(schema: Schema) -> str:
    """The Label Studio labeling config: plain ``<Text>`` (never HyperText), overlaps allowed."""
    view = ElementTree.Element("View")
    labels = ElementTree.SubElement(view, "Labels", name=FROM_NAME, toName=TO_NAME)
    for label in schema.labels:
        ElementTree.SubElement(
            labels,
            "Label",
            value=label.name,
            background=label.colour,
            hotkey=label.hotkey,
            hint=label.definition,
        )
    ElementTree.SubElement(view, "Text", name=TO_NAME, value="$text")
    ElementTree.indent(view)
    return ElementTree.tostring(view, encoding="unicode") + "\n"


def is_label_config(path: Path) -> bool:
    """Whether ``path`` holds a Label Studio labeling config (a ``<View>``), so ``schema config`` may replace it."""
    return ElementTree.fromstring(Path(path).read_text(encoding="utf-8")).tag == "View"


def write_label_studio_config(schema: Schema, out: str | Path, *, force: bool = False) -> None:
    """The labeling config written to ``out``, which must be absent or a config already (else only with ``force``)."""
    check_file_target(out, recognise=is_label_config, what="Label Studio config", force=force)
    atomic_write_text(out, label_studio_config(schema))


def labels_in_config(config_xml: str) -> list[str]:
    """The label values a Label Studio config offers, in order (to compare with the schema)."""
    root = ElementTree.fromstring(config_xml)
    return [element.get("value", "") for element in root.iter("Label")]


def spacy_labels(schema: Schema) -> list[str]:
    """Labels for spaCy's span categorizer, in schema order."""
    return schema.names


def instructions_html(guidelines_markdown: str) -> str:
    """The annotation guide as Label Studio shows it: HTML rendered from Markdown, raw HTML escaped.

    Label Studio inserts project instructions as HTML, so Markdown sent as-is would show its ``#``
    and ``|`` marks, and any ``<tag>`` quoted in the guide would be live markup.
    """
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(guidelines_markdown)
