from __future__ import annotations

from datetime import UTC, datetime

from intake.thai import be_year, format_thai_datetime, to_arabic_digits, to_thai_digits


def test_thai_datetime_is_bangkok_time_with_be_year():
    when = datetime(2024, 1, 22, 17, 30, tzinfo=UTC)  # 00:30 on the 23rd in Bangkok
    assert format_thai_datetime(when) == "23 มกราคม 2567 เวลา 00:30 น."
    assert format_thai_datetime(when, thai_digits=True) == "๒๓ มกราคม ๒๕๖๗ เวลา ๐๐:๓๐ น."


def test_be_year_follows_bangkok_new_year():
    assert be_year(datetime(2023, 12, 31, 17, 0, tzinfo=UTC)) == 2567
    assert be_year(datetime(2023, 12, 31, 16, 59, tzinfo=UTC)) == 2566


def test_digit_round_trip():
    assert to_arabic_digits("๑๒,๕๐๐") == "12,500"
    assert to_thai_digits("2567") == "๒๕๖๗"
