"""Thai conventions in one place: digits, Buddhist-era years, month names, Bangkok time."""

from __future__ import annotations

from datetime import datetime

from intake.clock import BANGKOK, as_utc

THAI_DIGITS = "๐๑๒๓๔๕๖๗๘๙"
_TO_ARABIC = str.maketrans(THAI_DIGITS, "0123456789")
_TO_THAI = str.maketrans("0123456789", THAI_DIGITS)

MONTHS_TH = (
    "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
    "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
)  # fmt: skip
BE_OFFSET = 543


def to_arabic_digits(text: str) -> str:
    return text.translate(_TO_ARABIC)


def to_thai_digits(text: str) -> str:
    return text.translate(_TO_THAI)


def be_year(when: datetime) -> int:
    return when.astimezone(BANGKOK).year + BE_OFFSET


def format_thai_datetime(when: datetime, *, thai_digits: bool = False) -> str:
    """`22 มกราคม 2567 เวลา 14:05 น.` in Bangkok time, as an official letter writes it."""
    local = as_utc(when).astimezone(BANGKOK)
    text = (
        f"{local.day} {MONTHS_TH[local.month - 1]} {local.year + BE_OFFSET} "
        f"เวลา {local:%H:%M} น."
    )
    return to_thai_digits(text) if thai_digits else text


def format_thai_date(when: datetime, *, thai_digits: bool = False) -> str:
    local = as_utc(when).astimezone(BANGKOK)
    text = f"{local.day} {MONTHS_TH[local.month - 1]} {local.year + BE_OFFSET}"
    return to_thai_digits(text) if thai_digits else text
