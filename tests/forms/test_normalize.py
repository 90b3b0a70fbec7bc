"""Normalisers: examples from form.md, and properties over generated values."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.forms import normalize as n


def test_thai_digits_both_ways() -> None:
    assert n.to_ascii_digits("๐๑๒๓๔๕๖๗๘๙") == "0123456789"
    assert n.to_thai_digits("2567") == "๒๕๖๗"
    assert n.to_ascii_digits("ภาคเหนือตอนบน ๑") == "ภาคเหนือตอนบน 1"


@given(st.text())
def test_digit_round_trip(text: str) -> None:
    ascii_only = text.translate(str.maketrans("", "", n.THAI_DIGITS))
    assert n.to_ascii_digits(n.to_thai_digits(ascii_only)) == ascii_only
    assert not set(n.to_ascii_digits(text)) & set(n.THAI_DIGITS)


@pytest.mark.parametrize(
    "text",
    [
        "๕. แผนงาน/โครงการสำคัญ",
        "5. แผนงาน/โครงการสำคัญ",
        "5) แผนงาน / โครงการสำคัญ",
        "(๕) แผนงาน/โครงการ\u200bสำคัญ",
        "ข้อ 5 แผนงาน/โครงการสำคัญ:",
        "  แผนงาน/โครงการสำคัญ *  ",
        "\ufeffแผนงาน/\u00a0โครงการสำคัญ",
    ],
)
def test_label_variants_normalise_alike(text: str) -> None:
    assert n.normalize_label(text) == "แผนงาน/โครงการสำคัญ"


def test_label_folds_case_and_thai_typing_slips() -> None:
    assert n.normalize_label("E-Mail:") == n.normalize_label("e-mail")
    assert n.normalize_label("ตัวชี้วัดความส\u0e4d\u0e32เร็จ") == n.normalize_label("ตัวชี้วัดความสำเร็จ")
    assert n.normalize_label("เเผนงาน") == n.normalize_label("แผนงาน")


_LABELS = ["ประเภท", "ชื่อกลุ่มจังหวัด/จังหวัด", "ตัวชี้วัดความสำเร็จ", "งบประมาณ (บาท)", "อีเมล"]
_NOISE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\ufeff", " ", "  ", "\u00a0", ""])


@given(st.sampled_from(_LABELS), st.data())
def test_invisible_characters_and_spaces_never_change_a_label(
    label: str, data: st.DataObject
) -> None:
    noisy = "".join(ch + data.draw(_NOISE) for ch in label)
    assert n.normalize_label(noisy) == n.normalize_label(label)


@given(
    st.sampled_from(_LABELS),
    st.integers(min_value=1, max_value=99),
    st.sampled_from([".", ")", ". ", ") ", " "]),
    st.booleans(),
)
def test_numbering_never_changes_a_label(label: str, number: int, sep: str, thai: bool) -> None:
    prefix = f"{number}{sep}"
    prefix = n.to_thai_digits(prefix) if thai else prefix
    assert n.normalize_label(prefix + label) == n.normalize_label(label)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12500000, Decimal("12500000")),
        (12500000.0, Decimal("12500000")),
        ("12,500,000", Decimal("12500000")),
        ("๑๒,๕๐๐,๐๐๐", Decimal("12500000")),
        ("12.5 ล้านบาท", Decimal("12500000")),
        ("12.5 ล้าน", Decimal("12500000")),
        ("๑๒.๕ล้านบาท", Decimal("12500000")),
        ("12,500,000 บาท", Decimal("12500000")),
        ("12,500,000.- บาท", Decimal("12500000")),
        ("฿1,200.50", Decimal("1200.50")),
        ("3 แสน", Decimal("300000")),
        ("0", Decimal("0")),
    ],
)
def test_budget_accepts(raw: object, expected: Decimal) -> None:
    assert n.normalize_budget(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("สิบล้าน", "budget_words"),
        ("หนึ่งแสนบาท", "budget_words"),
        ("ประมาณ 10 ล้าน", "bad_budget"),
        ("12,50,000", "bad_budget"),
        ("-", "bad_budget"),
        ("-5000", "negative_budget"),
        (-1, "negative_budget"),
        (float("nan"), "bad_budget"),
    ],
)
def test_budget_refuses(raw: object, code: str) -> None:
    assert n.normalize_budget(raw) == (None, code)


_amounts = st.decimals(
    min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False
)


@given(_amounts)
def test_budget_with_commas_in_thai_digits_parses_back(amount: Decimal) -> None:
    text = n.to_thai_digits(f"{amount:,f}")
    assert n.normalize_budget(text) == (amount, None)
    assert n.normalize_budget(text + " บาท") == (amount, None)
    assert n.normalize_budget(n.format_baht(amount, thai=True)) == (amount, None)


@given(st.decimals(min_value=0, max_value=10**5, places=3, allow_nan=False, allow_infinity=False))
def test_budget_in_millions(amount: Decimal) -> None:
    assert n.normalize_budget(f"{amount:f} ล้านบาท") == (amount * 10**6, None)


@given(st.integers(min_value=0, max_value=10**13))
def test_budget_numeric_cell_equals_text(amount: int) -> None:
    assert n.normalize_budget(amount)[0] == n.normalize_budget(f"{amount:,}")[0] == amount


@pytest.mark.parametrize("raw", [1, 1.0, "1", "๑", "แกน 1", "แกนที่ ๑", " 1. "])
def test_axis_accepts(raw: object) -> None:
    assert n.normalize_axis(raw) == (1, None)


@pytest.mark.parametrize("raw", [0, 4, "4", "๔", "1,2", "หนึ่ง", 1.5, "แกน"])
def test_axis_refuses(raw: object) -> None:
    assert n.normalize_axis(raw) == (None, "bad_axis")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ระยะสั้น", "ระยะสั้น"),
        ("สั้น", "ระยะสั้น"),
        ("ระยะ ยาว", "ระยะยาว"),
        ("ยาว", "ระยะยาว"),
        ("Long", "ระยะยาว"),
    ],
)
def test_term(raw: str, expected: str) -> None:
    assert n.normalize_term(raw) == (expected, None)
    assert n.normalize_term("กลาง") == (None, "bad_choice")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (2567, (2567, None)),
        ("๒๕๖๗", (2567, None)),
        ("พ.ศ. 2570", (2570, None)),
        (2580.0, (2580, None)),
        (2024, (2567, "fiscal_year_ce")),
        ("2037", (2580, "fiscal_year_ce")),
        ("67", (2567, "fiscal_year_short")),
        ("2567-2570", (2567, "fiscal_year_range")),
        ("๒๕๖๘ ถึง ๒๕๗๐", (2568, "fiscal_year_range")),
        (datetime(2024, 10, 1), (2567, "fiscal_year_ce")),
        (2566, (None, "bad_fiscal_year")),
        (2581, (None, "bad_fiscal_year")),
        (2023, (None, "bad_fiscal_year")),
        ("ปีหน้า", (None, "bad_fiscal_year")),
    ],
)
def test_fiscal_year(raw: object, expected: tuple[object, object]) -> None:
    assert n.normalize_fiscal_year(raw) == expected


@given(st.integers(min_value=2567, max_value=2580))
def test_fiscal_year_be_and_ce_agree(year: int) -> None:
    assert n.normalize_fiscal_year(year) == (year, None)
    assert n.normalize_fiscal_year(year - 543) == (year, "fiscal_year_ce")
    assert n.normalize_fiscal_year(n.to_thai_digits(str(year))) == (year, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("081-234-5678", "0812345678"),
        ("๐๘๑ ๒๓๔ ๕๖๗๘", "0812345678"),
        ("+66 81 234 5678", "0812345678"),
        ("+66 (0)81-234-5678", "0812345678"),
        ("66812345678", "0812345678"),
        ("02-123-4567", "021234567"),
        ("053 123 456 ต่อ 12", "053123456"),
        ("โทร. 09 1234 5678", "0912345678"),
        ("1234, 061-234-5678", "0612345678"),
        (812345678, "0812345678"),
        (21234567, "021234567"),
    ],
)
def test_phone_accepts(raw: object, expected: str) -> None:
    assert n.normalize_phone(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["12345", "081-234-567", "0112345678", "ไม่มี", "1234567890"])
def test_phone_refuses(raw: str) -> None:
    assert n.normalize_phone(raw) == (None, "bad_phone")


_mobile = st.from_regex(r"0[689][0-9]{8}", fullmatch=True)


@given(_mobile, st.sampled_from(["-", " ", "", " - "]), st.booleans(), st.booleans())
def test_phone_any_spacing_any_digits(number: str, sep: str, thai: bool, plus66: bool) -> None:
    text = sep.join([number[:3], number[3:6], number[6:]])
    if plus66:
        text = "+66" + sep + text[1:]
    if thai:
        text = n.to_thai_digits(text)
    assert n.normalize_phone(text) == (number, None)


def test_email() -> None:
    assert n.normalize_email("Somjai@Example.GO.TH") == ("Somjai@example.go.th", None)
    assert n.normalize_email("mailto:<a.b@moi.go.th>") == ("a.b@moi.go.th", None)
    assert n.normalize_email("a@b.co, c@d.co") == ("a@b.co", None)
    assert n.normalize_email("ติดต่อ b@c.com") == ("b@c.com", None)
    for bad in ("somjai", "somjai@", "a@b", "ก@ข.ไทย", "a@b..com"):
        assert n.normalize_email(bad) == (None, "bad_email"), bad


def test_target_and_int_and_text() -> None:
    assert n.normalize_target("๑๕%") == ("15%", None)
    assert n.normalize_target(15.0) == ("15", None)
    assert n.normalize_target("1,200") == ("1,200", None)
    assert n.normalize_target("เพิ่มขึ้น") == ("เพิ่มขึ้น", None)
    assert n.normalize_int("๓.") == (3, None)
    assert n.normalize_int("สาม") == (None, "bad_int")
    assert n.normalize_text("  a\u200b  b ") == ("a b", None)
    assert n.normalize_text("x" * 10, max_chars=5) == ("xxxxx", "too_long")


def test_none_is_never_a_problem() -> None:
    for fn in (n.normalize_budget, n.normalize_axis, n.normalize_phone, n.normalize_email):
        assert fn(None) == (None, None)
    assert n.normalize_fiscal_year(None) == (None, None)
