"""The README's "Adding a benchmark" tables against the schemas: every field documented, every default right."""

from __future__ import annotations

import re

import pytest

from harness.config.schema import BenchmarkSpec, Budget, DatasetSource, ExtraMetric
from tests.conftest import ROOT


def section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def rows(text: str) -> dict[str, str]:
    """Field name -> its default cell, from every markdown table row that starts with a `field`."""
    return {m[1]: m[2].strip() for m in re.finditer(r"^\| `(\w+)` \| ([^|]*)\|", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("schema", [BenchmarkSpec, DatasetSource, Budget, ExtraMetric], ids=lambda s: s.__name__)
def test_every_field_is_documented_with_its_default(schema):
    documented = rows(section("Adding a benchmark"))
    for name, field in schema.model_fields.items():
        assert name in documented, f"{schema.__name__}.{name} is not in README's 'Adding a benchmark'"
        cell = documented[name]
        if field.is_required():
            assert cell == "required", name
        elif isinstance(field.default, (int, float)) and not isinstance(field.default, bool):
            assert float(cell.strip("`").split()[0]) == field.default, name
        elif isinstance(field.default, str):
            quoted = (
                field.default
                if field.default.strip() == field.default and field.default
                else f'"{field.default}"'
            )
            assert cell.startswith(f"`{quoted}`"), name
        elif field.default is None:
            assert cell.startswith("none"), name


def test_the_label_rule_is_stated():
    text = " ".join(section("Adding a benchmark").split())
    assert (
        "Labels in the label column are class indices 0..K-1 in label_names order, or the names themselves (read as "
        "names when at least as many values are names as are valid indices). When a label name looks like an integer "
        "(label_names: ['1', '0']), labels are matched by name only, never by position." in text
    )
