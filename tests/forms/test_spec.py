"""The form description: loaded and checked, and the only thing to edit to change the form."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from intake.forms import FormSpec, SpecError, load_spec, read_forms
from tests.forms.builders import (
    SPEC_PATH,
    default_spec,
    filled_form_bytes,
    handmade_rows,
    sample_parts,
    xlsx_from_rows,
)

PART_KEYS = ["identity", "goals", "approaches", "indicators", "projects", "partners"]
COLUMN_KEYS = {
    "approaches": ["seq", "approach", "axis"],
    "indicators": ["seq", "indicator", "target", "unit"],
    "projects": ["seq", "name", "axis", "term", "budget", "source", "agency", "fiscal_year"],
    "partners": ["name", "role"],
}


def test_shipped_description_has_the_keys_the_service_relies_on() -> None:
    spec = load_spec(SPEC_PATH)
    assert isinstance(spec, FormSpec)
    assert [f.key for f in spec.header] == [
        "kind",
        "entity_name",
        "contact_name",
        "position",
        "phone",
        "email",
    ]
    assert [p.key for p in spec.parts] == PART_KEYS
    for part, keys in COLUMN_KEYS.items():
        assert [c.key for c in spec.part(part).columns] == keys
    assert spec.part("identity").min_chars == 20
    assert spec.part("projects").heading == "๕. แผนงาน/โครงการสำคัญ"
    assert [f.key for f in spec.header if f.required] == [
        "kind",
        "entity_name",
        "contact_name",
        "phone",
    ]
    assert spec.title == "แบบฟอร์มข้อมูลการยกระดับเมืองและการกระตุ้นเศรษฐกิจท้องถิ่นอย่างยั่งยืน"


def test_spec_is_frozen() -> None:
    spec = default_spec()
    with pytest.raises(AttributeError):
        spec.version = "x"  # type: ignore[misc]


def _variant(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = SPEC_PATH.read_text(encoding="utf-8")
    assert text.count(old) >= count, old
    path = tmp_path / "form.toml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('type = "budget"', 'type = "money"', "unknown type 'money'"),
        ('key = "goals"', 'key = "identity"', "duplicate part keys: identity"),
        ("[messages.bad_axis]", "[messages.bad_axis_renamed]", "lacks bad_axis"),
        ('kind = "list"', 'kind = "grid"', "kind must be one of"),
        ('severity = "warning"', 'severity = "notice"', "severity must be error or warning"),
        ("max_rows = 5000", "max_rows = 0", "max_rows must be positive"),
        ('version = "2567.1"', "version = 2567", "'version'"),
        ('choices = "kind"', 'choices = "kinds"', "[choices.kinds]"),
        ("[detect]", "[detect]\nunknown_setting = 1", "malformed entry"),
        ('title = "แบบ', "title = แบบ", "not valid TOML"),
    ],
)
def test_broken_description_fails_with_a_clear_message(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    path = _variant(tmp_path, old, new)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)
    assert says in str(caught.value)


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec("/nonexistent/form.toml")


_NEW_COLUMN = """
  [[parts.columns]]
  key = "outcome"
  label = "ผลที่คาดว่าจะได้รับ"
  variants = ["ผลลัพธ์"]
  type = "text"
  required = true
  width = 30
  help = "ผลที่คาดว่าจะได้รับจากโครงการ"

[[parts]]
key = "partners"
"""


def test_changing_the_description_changes_reading_without_code(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'label = "ชื่อแผนงาน/โครงการ"', 'label = "โครงการที่เสนอ"')
    text = path.read_text(encoding="utf-8").replace(
        '\n[[parts]]\nkey = "partners"\n', _NEW_COLUMN, 1
    )
    path.write_text(text, encoding="utf-8")
    changed = load_spec(path)
    assert [c.key for c in changed.part("projects").columns][-1] == "outcome"

    projects = sample_parts()["projects"]
    for project, outcome in zip(projects, ["ย่านเก่ามีชีวิต", "รายได้ชุมชนเพิ่ม"], strict=True):
        project["outcome"] = outcome
    data = filled_form_bytes(spec=changed, projects=projects)

    (result,) = read_forms("new.xlsx", "xlsx", data, changed)
    assert result.valid, [p.message_th for p in result.problems]
    assert result.data is not None
    assert result.data.parts["projects"] == projects
    assert result.data.parts["projects"][0]["budget"] == Decimal("12500000")

    # the new required column is enforced...
    projects[1]["outcome"] = None
    (result,) = read_forms(
        "new.xlsx", "xlsx", filled_form_bytes(spec=changed, projects=projects), changed
    )
    assert [(p.code, p.column) for p in result.problems] == [("missing_field", "ผลที่คาดว่าจะได้รับ")]

    # ...and the old description does not know the renamed label
    (old,) = read_forms("new.xlsx", "xlsx", data, default_spec())
    assert ("missing_column", "ชื่อแผนงาน/โครงการ") in {(p.code, p.column) for p in old.problems}


def test_a_new_variant_is_accepted_after_editing_the_description(tmp_path: Path) -> None:
    rows_label = "วงเงินที่ขอ"
    path = _variant(tmp_path, 'variants = ["งบประมาณ",', f'variants = ["{rows_label}", "งบประมาณ",')
    rows = handmade_rows()
    rows[-2][4] = rows_label
    data = xlsx_from_rows({"S": rows})
    assert not read_forms("f.xlsx", "xlsx", data, default_spec())[0].valid
    assert read_forms("f.xlsx", "xlsx", data, load_spec(path))[0].valid


def test_messages_render_with_placeholders() -> None:
    message = default_spec().render("bad_axis", label="แกนหลัก", value="4")
    assert (message.severity, message.text) == (
        "error",
        "ช่อง ‘แกนหลัก’ ต้องเป็นเลข 1, 2 หรือ 3 (ได้รับ ‘4’)",
    )
    assert default_spec().render("fiscal_year_ce").severity == "warning"
