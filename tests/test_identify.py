"""Sender identification against the real roster files in config/senders."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.identify import Identifier, normalise_name
from intake.roster import load_roster, thai_sort_key

SENDERS = Path(__file__).resolve().parent.parent / "config" / "senders"


@pytest.fixture(scope="module")
def roster():
    return load_roster(SENDERS)


@pytest.fixture(scope="module")
def identifier(roster):
    return Identifier(roster, {"TH-57": {"saraban@chiangrai.go.th"}})


def test_roster_has_94_expected_senders_and_bangkok_is_not_one(roster):
    expected = roster.expected
    assert len(expected) == 94
    assert sum(e.kind == "province" for e in expected) == 76
    assert sum(e.kind == "cluster" for e in expected) == 18
    assert "TH-10" in roster.by_id and not roster.by_id["TH-10"].expected


def test_bangkok_can_be_made_expected():
    assert len(load_roster(SENDERS, include_bangkok=True).expected) == 95


@pytest.mark.parametrize(
    ("written", "kind", "expected"),
    [
        ("เชียงใหม่", None, "TH-50"),
        ("จ.เชียงใหม่", None, "TH-50"),
        ("จังหวัด  เชียงใหม่", None, "TH-50"),
        ("เชียง\u200bใหม่", None, "TH-50"),
        ("Chiang Mai", None, "TH-50"),
        ("CHIANG MAI PROVINCE", None, "TH-50"),
        ("โคราช", None, "TH-30"),
        ("Korat", None, "TH-30"),
        ("ภาคเหนือตอนบน ๑", "กลุ่มจังหวัด", "north-upper-1"),
        ("กลุ่มจังหวัดภาคเหนือตอนบน 2", None, "north-upper-2"),
        ("Upper Northern Provincial Cluster 1", None, "north-upper-1"),
        ("กลุ่มจังหวัดภาคใต้ชายแดน", "กลุ่มจังหวัด", "south-border"),
    ],
)
def test_form_header_names_resolve(identifier, written, kind, expected):
    match = identifier.by_form_name(written, kind)
    assert (match.sender_id, match.method) == (expected, "form_header")


def test_unknown_name_is_not_guessed(identifier):
    match = identifier.by_form_name("จังหวัดสมมุติ", "จังหวัด")
    assert match.sender_id is None and match.reason == "unknown"


def test_missing_name(identifier):
    assert identifier.by_form_name("  ", None).reason == "missing"


def test_address_match_is_case_insensitive(identifier):
    assert identifier.by_address("SARABAN@ChiangRai.go.th").sender_id == "TH-57"
    assert identifier.by_address("someone@gmail.com").sender_id is None


def test_subject_naming_two_provinces_is_ambiguous(identifier):
    match = identifier.by_text("ส่งแบบฟอร์ม จ.ตาก และ จ.น่าน", "subject")
    assert match.sender_id is None
    assert match.reason == "ambiguous"
    assert set(match.candidates) == {"TH-63", "TH-55"}


def test_cluster_name_in_subject_is_not_read_as_a_province(identifier):
    match = identifier.by_text("แบบฟอร์มข้อมูล กลุ่มจังหวัดภาคตะวันออก ๒", "subject")
    assert match.sender_id == "east-2"


def test_message_identity_prefers_address_then_subject(identifier):
    by_address = identifier.for_message("saraban@chiangrai.go.th", "จังหวัดน่าน", "")
    assert (by_address.sender_id, by_address.method) == ("TH-57", "address")
    by_subject = identifier.for_message("x@gmail.com", "ส่งข้อมูล จังหวัดน่าน", "")
    assert (by_subject.sender_id, by_subject.method) == ("TH-55", "subject")
    by_body = identifier.for_message("x@gmail.com", "ส่งข้อมูล", "เรียน ... จังหวัดยโสธร ขอส่ง")
    assert (by_body.sender_id, by_body.method) == ("TH-35", "body")
    nothing = identifier.for_message("x@gmail.com", "hello", "")
    assert nothing.sender_id is None and nothing.reason == "unknown"


def test_normalise_name_strips_prefixes_digits_and_spacing():
    assert normalise_name(" จังหวัด เชียงใหม่ ") == normalise_name("เชียงใหม่")
    assert normalise_name("ภาคเหนือตอนบน ๑") == normalise_name("ภาคเหนือตอนบน1")


def test_thai_sort_key_orders_leading_vowels_by_consonant():
    names = ["เชียงใหม่", "ชลบุรี", "แพร่", "พะเยา", "กระบี่"]
    assert sorted(names, key=thai_sort_key) == ["กระบี่", "ชลบุรี", "เชียงใหม่", "พะเยา", "แพร่"]
