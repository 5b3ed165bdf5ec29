"""The label schema and what is generated from it."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from annotate.errors import SchemaError, TargetError
from annotate.labels import (
    label_studio_config,
    labels_in_config,
    load_schema,
    spacy_labels,
    write_label_studio_config,
)

EXPECTED = ["ACTOR", "DEMAND", "FIGURE", "ATTRIBUTION"]


def test_schema_has_the_four_labels_in_order(schema):
    assert schema.names == EXPECTED
    assert spacy_labels(schema) == EXPECTED
    assert all(label.definition and label.hotkey for label in schema.labels)


def test_label_studio_config_parses_back_with_exactly_the_schema_labels(schema):
    config = label_studio_config(schema)
    root = ElementTree.fromstring(config)
    assert labels_in_config(config) == EXPECTED
    assert root.find("Text") is not None and root.find("HyperText") is None
    labels = root.find("Labels")
    assert labels.get("name") == "label" and labels.get("toName") == "text"
    assert [label.get("hotkey") for label in labels] == [label.hotkey for label in schema.labels]


def test_committed_label_studio_config_is_up_to_date(schema, project_root):
    committed = (project_root / "guidelines" / "label_config.xml").read_text(encoding="utf-8")
    assert committed == label_studio_config(schema), "run: annotate schema config --out guidelines/label_config.xml"


def test_the_config_is_written_over_a_config_only(schema, tmp_path):
    out = tmp_path / "label_config.xml"
    write_label_studio_config(schema, out)
    assert out.read_text(encoding="utf-8") == label_studio_config(schema)
    write_label_studio_config(schema, out)
    (tmp_path / "notes.xml").write_text("<notes/>", encoding="utf-8")
    with pytest.raises(TargetError):
        write_label_studio_config(schema, tmp_path / "notes.xml")
    write_label_studio_config(schema, tmp_path / "notes.xml", force=True)
    assert labels_in_config((tmp_path / "notes.xml").read_text(encoding="utf-8")) == EXPECTED


def _write(tmp_path, body):
    path = tmp_path / "labels.toml"
    path.write_text(body, encoding="utf-8")
    return path


ONE = '[[label]]\nname = "{name}"\ndefinition = "d"\ncolour = "{colour}"\nhotkey = "{hotkey}"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no \\[\\[label\\]\\] entries"),
        ("[[label\n", "not valid TOML"),
        ('[[label]]\nname = "ACTOR"\n', "label #1 lacks definition, colour, hotkey"),
        (ONE.format(name="actor", colour="#000000", hotkey="a"), "label name 'actor' must be upper-case"),
        (ONE.format(name="ACTOR", colour="red", hotkey="a"), "colour 'red' is not #rrggbb"),
        (ONE.format(name="ACTOR", colour="#000000", hotkey="ab"), "hotkey 'ab' must be one key"),
        (ONE.format(name="A", colour="#000000", hotkey="a") * 2, "duplicate label name A"),
    ],
)
def test_bad_schemas_are_refused_with_the_file_named(tmp_path, body, message):
    with pytest.raises(SchemaError, match=rf"labels\.toml: .*{message}"):
        load_schema(_write(tmp_path, body))


def test_missing_schema_file_is_named(tmp_path):
    with pytest.raises(SchemaError, match="nope.toml: cannot read the label schema"):
        load_schema(tmp_path / "nope.toml")
