"""Pure normalisers for what people type into the form.

Every value normaliser takes one raw cell value (str, int, float, Decimal, date or None) and
returns `(value, code)`:

- `(normalised, None)`: fine;
- `(normalised, code)`: usable, but `code` names a warning (a C.E. year converted, say);
- `(None, code)`: unusable, `code` names the error.

`None` in gives `(None, None)`: whether a value is required is the validator's business. Codes
are the keys of `[messages]` in `config/form.toml`, which holds the Thai text and the severity,
so these functions stay free of wording and are easy to property-test.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

Outcome = tuple[Any, str | None]

THAI_DIGITS = "๐๑๒๓๔๕๖๗๘๙"
_TO_ASCII = str.maketrans(THAI_DIGITS, "0123456789")
_TO_THAI = str.maketrans("0123456789", THAI_DIGITS)
# Zero-width and invisible characters that Word, LINE and web forms leave inside labels.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = re.compile(r"[\s\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_NUMBERING = re.compile(
    r"^(?:(?:ส่วนที่|หัวข้อที่|หัวข้อ|ข้อ)\s*)?[(\[]?[0-9]{1,2}(?:\.[0-9]{1,2})*\s*[.)\]:]?\s*(?=\S)"
)
_LABEL_TRAIL = ".…:：*_ "


def to_ascii_digits(text: str) -> str:
    """Thai digits ๐-๙ become 0-9; everything else is kept."""
    return text.translate(_TO_ASCII)


def to_thai_digits(text: str) -> str:
    """0-9 become Thai digits (for tests and for printing numbers the Thai way)."""
    return text.translate(_TO_THAI)


def clean_text(value: Any) -> str | None:
    """A cell as text: NFC, invisible characters dropped, Thai typing slips fixed, trimmed.

    Thai keyboards let people type sara am as nikhahit + sara aa and sara ae as two sara e;
    both render identically, so they are folded here to keep labels and names comparable.
    """
    if value is None:
        return None
    if type(value) is str:
        return _clean_str(value)
    if isinstance(value, bool):
        value = "TRUE" if value else "FALSE"
    elif isinstance(value, float | int | Decimal):
        value = number_text(value)
    return _clean_str(str(value))


@lru_cache(maxsize=8192)
def _clean_str(value: str) -> str | None:
    """clean_text of a string, cached: a form's cells are cleaned by the label scan, the parser
    and the validator in turn, and labels repeat in every form (only `str` keys: 1 == True)."""
    text = unicodedata.normalize("NFC", value).translate(_INVISIBLE)
    text = text.replace("\u0e4d\u0e32", "\u0e33").replace("เเ", "แ")
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r", "\n").split("\n")]
    text = "\n".join(line for line in lines if line)
    return text or None


def number_text(value: float | int | Decimal) -> str:
    """A numeric cell as people wrote it: 15.0 -> "15", 12.5 -> "12.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return str(value)


def normalize_label(text: Any) -> str:
    """The key used to compare a cell with a label: equal keys mean the same label.

    Thai writes no spaces between words, so spaces carry no meaning in a label and are removed
    altogether; numbering ("๔.", "4)", "ข้อ 4"), trailing colons, stars and dotted leaders are
    dropped; case is folded for English variants.
    """
    if type(text) is str:
        return _label_key(text)
    return _label_key_uncached(text)


@lru_cache(maxsize=8192)
def _label_key(text: str) -> str:
    """Cached: every text cell of every sheet is keyed while looking for labels."""
    return _label_key_uncached(text)


def _label_key_uncached(text: Any) -> str:
    cleaned = clean_text(text)
    if cleaned is None:
        return ""
    cleaned = to_ascii_digits(cleaned.replace("\n", " "))
    cleaned = _NUMBERING.sub("", cleaned, count=1)
    cleaned = cleaned.strip(_LABEL_TRAIL)
    return _SPACES.sub("", cleaned).casefold()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _integral(value: Any) -> int | None:
    """An int from a numeric cell that holds a whole number, else None."""
    if not _is_number(value):
        return None
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        return None
    if not dec.is_finite() or dec != dec.to_integral_value():
        return None
    return int(dec)


def _ascii(value: Any) -> str:
    return to_ascii_digits(clean_text(value) or "")


def normalize_text(value: Any, max_chars: int = 5000) -> Outcome:
    """Free text, trimmed; longer than `max_chars` is cut with a warning."""
    text = clean_text(value)
    if text is None:
        return None, None
    if len(text) > max_chars:
        return text[:max_chars], "too_long"
    return text, None


def normalize_int(value: Any) -> Outcome:
    """A whole number such as a row number: 3, "3", "๓", "3." or "3)"."""
    if value is None:
        return None, None
    number = _integral(value)
    if number is not None:
        return number, None
    text = _ascii(value).rstrip(".)")
    if re.fullmatch(r"\d{1,9}", text):
        return int(text), None
    return None, "bad_int"


def normalize_axis(value: Any, low: int = 1, high: int = 3) -> Outcome:
    """The committee's axis, one of low..high: 2, "2", "๒", "แกน 2", "แกนที่ 2"."""
    if value is None:
        return None, None
    number = _integral(value)
    if number is None:
        text = re.sub(r"^(?:แกนที่|แกน|axis)\s*", "", _ascii(value).casefold()).rstrip(".")
        number = int(text) if re.fullmatch(r"\d{1,3}", text) else None
    if number is None or not low <= number <= high:
        return None, "bad_axis"
    return number, None


def normalize_choice(value: Any, choices: Mapping[str, Sequence[str]]) -> Outcome:
    """One of a few fixed words (canonical -> accepted variants), compared like labels."""
    if value is None:
        return None, None
    key = normalize_label(value)
    for canonical, variants in choices.items():
        if key in {normalize_label(canonical), *map(normalize_label, variants)}:
            return canonical, None
    return None, "bad_choice"


TERM_CHOICES: Mapping[str, Sequence[str]] = {
    "ระยะสั้น": ("สั้น", "short", "short term"),
    "ระยะยาว": ("ยาว", "long", "long term"),
}


def normalize_term(value: Any, choices: Mapping[str, Sequence[str]] = TERM_CHOICES) -> Outcome:
    """ระยะสั้น / ระยะยาว (also "สั้น", "ยาว")."""
    result, code = normalize_choice(value, choices)
    return result, code


_MULTIPLIERS = (("พันล้าน", 10**9), ("ล้าน", 10**6), ("แสน", 10**5), ("หมื่น", 10**4), ("พัน", 10**3))
_CURRENCY = re.compile(r"(?:บาท|บ\.|baht|thb|฿)", re.IGNORECASE)
_AMOUNT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_THAI_LETTER = re.compile(r"[\u0e01-\u0e4e]")


def normalize_budget(value: Any) -> Outcome:
    """Baht as a Decimal: a numeric cell, "12,500,000", "๑๒,๕๐๐,๐๐๐", "12.5 ล้านบาท", "1,000.-".

    Amounts in words ("สิบล้าน") are refused rather than guessed: a wrong budget is worse
    than a correction request.
    """
    if value is None:
        return None, None
    if _is_number(value):
        amount = Decimal(str(value))
        if not amount.is_finite():
            return None, "bad_budget"
        return (None, "negative_budget") if amount < 0 else (amount, None)
    text = _ascii(value).casefold()
    text = _CURRENCY.sub("", text).replace(" ", "").rstrip("-").rstrip(".")
    multiplier = 1
    for word, factor in _MULTIPLIERS:
        if text.endswith(word):
            text, multiplier = text[: -len(word)], factor
            break
    if not _AMOUNT.fullmatch(text):
        has_digit = any(ch.isdigit() for ch in text)
        return None, (
            "budget_words" if _THAI_LETTER.search(text) and not has_digit else "bad_budget"
        )
    amount = Decimal(text.replace(",", "")) * multiplier
    return (None, "negative_budget") if amount < 0 else (amount, None)


def format_baht(amount: Decimal, thai: bool = False) -> str:
    """12500000 -> "12,500,000.00" (Thai digits if asked): for templates, tests and replies."""
    text = f"{amount:,.2f}"
    return to_thai_digits(text) if thai else text


def normalize_fiscal_year(value: Any, low: int = 2567, high: int = 2580) -> Outcome:
    """A B.E. fiscal year in low..high; C.E. years, "67" and ranges "2567-2570" with a warning."""
    if value is None:
        return None, None
    if isinstance(value, datetime | date):
        return _year(value.year, low, high, short=False)
    number = _integral(value)
    if number is not None:
        return _year(number, low, high, short=False)
    text = _ascii(value)
    groups = re.findall(r"\d+", text)
    if len(groups) == 1:
        return _year(int(groups[0]), low, high, short=len(groups[0]) == 2)
    if len(groups) == 2 and re.search(r"\d\s*(?:-|–|ถึง|/)\s*\d", text):
        start, code = _year(int(groups[0]), low, high, short=len(groups[0]) == 2)
        return (start, "fiscal_year_range") if start is not None else (None, code)
    return None, "bad_fiscal_year"


def _year(number: int, low: int, high: int, short: bool) -> Outcome:
    if low <= number <= high:
        return number, None
    if low - 543 <= number <= high - 543:
        return number + 543, "fiscal_year_ce"
    century = low - low % 100
    if short and low <= century + number <= high:
        return century + number, "fiscal_year_short"
    return None, "bad_fiscal_year"


_MOBILE = re.compile(r"0[689]\d{8}")
_LANDLINE = re.compile(r"0[2-57]\d{7}")
_PHONE_SPLIT = re.compile(r"[,;/\n]|หรือ|และ")
_EXTENSION = re.compile(r"(?:ต่อ|ext\.?|#|x).*$", re.IGNORECASE)


def normalize_phone(value: Any) -> Outcome:
    """A Thai mobile (10 digits, 06/08/09) or landline (9 digits, 0x) as digits only.

    Accepts Thai or Arabic digits, spaces, dashes, dots, brackets, +66, an extension (dropped)
    and several numbers (the first valid one is kept). A numeric cell lost its leading zero in
    Excel, so one is put back.
    """
    if value is None:
        return None, None
    number = _integral(value)
    if number is not None:
        digits = str(number)
        digits = "0" + digits if len(digits) in (8, 9) and digits[0] != "0" else digits
        return (digits, None) if _valid_phone(digits) else (None, "bad_phone")
    for candidate in _PHONE_SPLIT.split(_ascii(value)):
        digits = _phone_digits(_EXTENSION.sub("", candidate))
        if _valid_phone(digits):
            return digits, None
    return None, "bad_phone"


def _phone_digits(text: str) -> str:
    text = re.sub(r"[^0-9+]", "", text)  # spaces, dashes, brackets, "โทร." and the like
    if text.startswith("+66"):
        text = text[3:]
        text = text if text.startswith("0") else "0" + text
    elif text.startswith("66") and len(text) in (10, 11):
        text = "0" + text[2:]
    return text


def _valid_phone(digits: str) -> bool:
    return bool(_MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(digits))


_EMAIL = re.compile(r"[A-Za-z0-9._%+'\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def normalize_email(value: Any) -> Outcome:
    """An e-mail address (the first, if several), domain lower-cased; "mailto:" and <> dropped."""
    if value is None:
        return None, None
    text = (clean_text(value) or "").replace("mailto:", "")
    for candidate in re.split(r"[\s,;/]+", text):
        candidate = candidate.strip("<>()[]\"'.")
        if _EMAIL.fullmatch(candidate):
            local, _, domain = candidate.rpartition("@")
            return f"{local}@{domain.lower()}", None
    return None, "bad_email"


def normalize_target(value: Any) -> Outcome:
    """A target as text with Arabic digits: 15 -> "15", "๑๕%" -> "15%", "เพิ่มขึ้น" as is."""
    if value is None:
        return None, None
    return (to_ascii_digits(clean_text(value) or "") or None), None
