"""The acceptance table (what annotators did to the model's predictions), shown by pull and agreement."""

from __future__ import annotations

from rich.table import Column, Table

from annotate.cli._util import console


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_acceptance(figures: dict, source: str = "") -> None:
    """One table: per model version and label, kept / boundary / label changed / deleted / added, P and R."""
    table = Table(
        Column("model version\n  label", overflow="fold"),
        "kept",
        "boundary\nchanged",
        "label\nchanged",
        "deleted",
        "added",
        "P",
        "R",
        title=f"What annotators did to the predictions{source}",
    )
    for version, entry in figures["model_versions"].items():
        table.add_row(f"{version}: {entry['annotations']} annotation(s)", style="bold")
        for label, counts in [*entry["labels"].items(), ("all", entry["total"])]:
            table.add_row(
                f"  {label}",
                *(str(counts[kind]) for kind in ("kept", "boundary_changed", "label_changed", "deleted", "added")),
                _ratio(counts["precision"]),
                _ratio(counts["recall"]),
                style="bold" if label == "all" else None,
            )
        table.add_section()
    console.print(table)
    if figures.get("unassisted_annotations"):
        console.print(f"{figures['unassisted_annotations']} annotation(s) made with no prediction shown (not counted)")
