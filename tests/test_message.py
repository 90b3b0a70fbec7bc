"""intake.message: raw bytes in, decoded message out (failure-modes.md 22, 27-40, 48-49, 53)."""

from __future__ import annotations

import base64
import codecs
import io
import os
import zipfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.attachments import safe_filename, sniff_kind
from intake.message import (
    Limits,
    ParsedMessage,
    bounced_message_ids,
    is_bounce,
    noise_reason,
    parse,
)
from tests.mime_builders import (
    THAI_BODY,
    THAI_FILENAME,
    THAI_SUBJECT,
    XLSX_TYPE,
    attachment_part,
    build_bounce,
    build_cfb,
    build_docx,
    build_forward,
    build_multipart,
    build_ods,
    build_submission,
    build_xlsm,
    build_xlsx,
    build_zip,
    encode_word,
    encode_words_split,
    envelope_headers,
    text_part,
    uuencode,
)

XLSX = build_xlsx()
OWN = frozenset({"intake.form@gmail.com"})


def only_attachment(msg: ParsedMessage):
    assert len(msg.attachments) == 1, (msg.attachments, msg.notes)
    return msg.attachments[0]


# --------------------------------------------------------------------------- Thai in every encoding


@pytest.mark.parametrize(
    ("charset", "body_encoding", "header_encoding"),
    [
        ("utf-8", "base64", "B"),
        ("utf-8", "quoted-printable", "Q"),
        ("utf-8", "8bit", "raw"),
        ("tis-620", "base64", "B"),
        ("tis-620", "quoted-printable", "Q"),
        ("windows-874", "base64", "B"),
        ("windows-874", "quoted-printable", "Q"),
        ("windows-874", "8bit", "raw"),
        ("x-windows-874", "base64", "B"),
        ("iso-8859-11", "base64", "B"),
    ],
)
def test_thai_subject_body_and_filename_decode_identically(charset, body_encoding, header_encoding):
    raw = build_submission(attachments=[(THAI_FILENAME, XLSX, XLSX_TYPE)], charset=charset,
                           body_encoding=body_encoding, header_encoding=header_encoding)
    msg = parse(raw)
    assert msg.subject == THAI_SUBJECT
    assert msg.body_text == THAI_BODY
    assert msg.from_name == "สำนักงานจังหวัดเชียงใหม่"
    assert msg.from_address == "saraban@chiangmai.go.th"
    att = only_attachment(msg)
    assert (att.filename, att.kind, att.data) == (THAI_FILENAME, "xlsx", XLSX)
    assert msg.headers["subject"] == [THAI_SUBJECT]


def test_windows_874_is_a_known_codec_after_import():
    assert codecs.lookup("windows-874").name == "cp874"
    assert codecs.lookup("x-windows-874").name == "cp874"


def test_tis_620_label_with_windows_punctuation_decodes_as_cp874():
    # Thai Windows labels text TIS-620 but writes cp874 smart quotes (0x93/0x94), which the
    # built-in tis-620 table rejects.
    subject = "“แบบฟอร์ม” …"
    word = f"=?tis-620?B?{base64.b64encode(subject.encode('cp874')).decode()}?="
    raw = build_multipart([f"Subject: {word}", "From: a@b.go.th"], [text_part("x")])
    assert parse(raw).subject == subject


def test_8bit_utf8_body_is_not_mojibake():
    raw = build_submission(charset="utf-8", body_encoding="8bit")
    body = parse(raw).body_text
    assert body == THAI_BODY
    assert "à¸" not in body


def test_body_without_charset_falls_back_to_utf8_then_cp874():
    for data in (THAI_BODY.encode("utf-8"), THAI_BODY.encode("cp874")):
        raw = (b"From: a@b.go.th\r\nSubject: x\r\nContent-Type: text/plain\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + data.replace(b"\n", b"\r\n"))
        assert parse(raw).body_text == THAI_BODY


@pytest.mark.parametrize("label", ["raw-unicode-escape", "unicode-escape", "undefined", "base64",
                                   "no-such-charset", "rot13"])
def test_bogus_charset_labels_fall_back_to_real_decoding(label):
    raw = (f"From: a@b.go.th\r\nSubject: x\r\nContent-Type: text/plain; charset={label}\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + THAI_SUBJECT.encode()
    assert parse(raw).body_text == THAI_SUBJECT


def test_ascii_label_on_utf8_bytes_is_read_as_utf8():
    raw = (b"From: a@b.go.th\r\nSubject: x\r\nContent-Type: text/plain; charset=us-ascii\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + THAI_SUBJECT.encode())
    assert parse(raw).body_text == THAI_SUBJECT


# --------------------------------------------------------------------------- filenames


@pytest.mark.parametrize("style", ["rfc2231", "rfc2231-continued", "rfc2047-quoted", "raw8bit"])
@pytest.mark.parametrize("charset", ["utf-8", "windows-874"])
def test_filename_parameter_styles(style, charset):
    part = attachment_part(THAI_FILENAME, XLSX, filename_style=style, charset=charset)
    msg = parse(build_submission(attachments=[part]))
    assert only_attachment(msg).filename == THAI_FILENAME


def test_rfc2231_continuation_really_has_several_sections():
    part = attachment_part(THAI_FILENAME, XLSX, filename_style="rfc2231-continued")
    assert b"filename*2*=" in part
    assert only_attachment(parse(build_submission(attachments=[part]))).filename == THAI_FILENAME


def test_outlook_split_encoded_words_inside_quoted_filename():
    name = "รายงานผลการดำเนินงาน ไตรมาส 3.xlsx"
    part = (f'Content-Type: {XLSX_TYPE};\r\n name="{encode_words_split(name)}"\r\n'
            f'Content-Disposition: attachment;\r\n filename="{encode_words_split(name)}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + base64.encodebytes(XLSX)
    assert only_attachment(parse(build_submission(attachments=[part]))).filename == name


def test_filename_mixing_plain_text_and_encoded_words_keeps_every_fragment():
    name = "report แบบฟอร์ม เชียงใหม่ (2567) final.xlsx"
    part = attachment_part(name, XLSX, filename_style="mixed")
    assert b"report =?utf-8?B?" in part  # the plain fragment really is outside the word
    assert only_attachment(parse(build_submission(attachments=[part]))).filename == name


def test_raw_8bit_utf8_filename_decodes_as_utf8_not_latin1():
    part = attachment_part(THAI_FILENAME, XLSX, filename_style="raw8bit")
    assert THAI_FILENAME.encode() in part
    name = only_attachment(parse(build_submission(attachments=[part]))).filename
    assert name == THAI_FILENAME


def test_raw_8bit_cp874_filename_decodes():
    part = attachment_part(THAI_FILENAME, XLSX, filename_style="raw8bit", charset="windows-874")
    assert only_attachment(parse(build_submission(attachments=[part]))).filename == THAI_FILENAME


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd.xlsx", "passwd.xlsx"),
        ("..\\..\\windows\\form.xlsx", "form.xlsx"),
        ("C:\\Users\\saraban\\Desktop\\แบบฟอร์ม.xlsx", "แบบฟอร์ม.xlsx"),
        ("/etc/cron.d/form.xlsx", "form.xlsx"),
        ("form\x00.xlsx", "form.xlsx"),
        ("bad\x01\x1fname.xlsx", "badname.xlsx"),
        (".htaccess.xlsx", "htaccess.xlsx"),
        ("e\u0301tat.xlsx", "\u00e9tat.xlsx"),  # NFD in, NFC out
        ("exe\u202eslx.xlsx", "exeslx.xlsx"),  # bidi override removed
    ],
)
def test_filenames_are_sanitised(sent, stored):
    part = attachment_part(sent, XLSX, filename_style="rfc2231")
    assert only_attachment(parse(build_submission(attachments=[part]))).filename == stored


def test_long_filename_is_trimmed_keeping_extension():
    sent = "ก" * 300 + ".xlsx"
    name = only_attachment(parse(build_submission(attachments=[(sent, XLSX, XLSX_TYPE)]))).filename
    assert len(name) == 200
    assert name.endswith(".xlsx")


@pytest.mark.parametrize("sent", ["..", "/", "\x00", "...", "C:\\"])
def test_filename_that_sanitises_to_nothing_gets_a_generated_name(sent):
    part = attachment_part(sent, XLSX, filename_style="rfc2231")
    assert only_attachment(parse(build_submission(attachments=[part]))).filename == "attachment-1.xlsx"


@given(st.text(max_size=400))
def test_safe_filename_is_always_one_harmless_path_component(name):
    safe = safe_filename(name, 7, "xlsx")
    assert safe
    assert len(safe) <= 200
    assert not safe.startswith(".")
    assert "/" not in safe and "\\" not in safe
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in safe)
    assert safe not in (".", "..")


# --------------------------------------------------------------------------- where attachments hide


def test_xlsx_without_content_disposition_is_extracted():
    part = (f'Content-Type: {XLSX_TYPE}; name="form.xlsx"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + base64.encodebytes(XLSX)
    att = only_attachment(parse(build_submission(attachments=[part])))
    assert (att.filename, att.kind, att.origin, att.data) == ("form.xlsx", "xlsx", "attachment", XLSX)


def test_inline_xlsx_is_extracted_with_inline_origin():
    part = attachment_part("form.xlsx", XLSX, disposition="inline", filename_style="plain")
    msg = parse(build_submission(attachments=[part]))
    att = only_attachment(msg)
    assert (att.kind, att.origin) == ("xlsx", "inline")
    assert msg.body_text == THAI_BODY


def test_inline_image_in_html_body_is_an_attachment_not_body():
    html = text_part("<p>ดูรูป</p>", subtype="html")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    image = (b"Content-Type: image/png\r\nContent-ID: <logo@x>\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(png))
    related = build_multipart([], [html, image], subtype="related", boundary="=_rel_=")
    msg = parse(build_multipart(envelope_headers(), [related]))
    att = only_attachment(msg)
    assert (att.kind, att.origin, att.filename, att.data) == ("image", "inline", "attachment-1.png", png)
    assert msg.body_text == "ดูรูป"


@pytest.mark.parametrize("declared", ["application/octet-stream", "application/pdf", "text/plain"])
def test_attachment_is_typed_by_content_not_header(declared):
    msg = parse(build_submission(attachments=[("form.pdf", XLSX, declared)]))
    att = only_attachment(msg)
    assert att.kind == "xlsx"
    assert att.content_type == declared


def test_attachment_without_filename_gets_safe_generated_name_and_keeps_bytes():
    part = attachment_part(None, XLSX, "application/octet-stream")
    att = only_attachment(parse(build_submission(attachments=[part])))
    assert (att.filename, att.kind, att.data) == ("attachment-1.xlsx", "xlsx", XLSX)


def test_text_attachment_with_disposition_is_not_body():
    part = attachment_part("notes.txt", "บันทึก".encode(), "text/plain; charset=utf-8")
    msg = parse(build_submission(attachments=[part]))
    assert only_attachment(msg).kind == "text"
    assert msg.body_text == THAI_BODY


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (XLSX, "xlsx"),
        (build_xlsm(), "xlsm"),
        (build_docx(), "docx"),
        (build_ods(), "ods"),
        (build_cfb(["Workbook"]), "xls"),
        (build_cfb(["\x05SummaryInformation", "\x05DocumentSummaryInformation", "CompObj", "Ole",
                    "Workbook"]), "xls"),
        (build_cfb(["Book"]), "xls"),
        (build_cfb(["WordDocument", "1Table"]), "doc"),
        (build_cfb(["EncryptionInfo", "EncryptedPackage"]), "encrypted"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "pdf"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image"),
        (b"GIF89a\x01\x00", "image"),
        (b"II*\x00\x08\x00\x00\x00", "image"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image"),
        (b"\x78\x9f\x3e\x22\x01\x00", "tnef"),
        (build_zip([("a.txt", b"hello")]), "zip"),
        ("ลำดับ,โครงการ\n1,ถนน\n".encode(), "text"),
        (bytes(range(256)), "other"),
        (b"", "other"),
    ],
)
def test_sniff_kind_by_magic(data, kind):
    assert sniff_kind(data, "anything.bin") == kind


def test_damaged_ooxml_and_unknown_cfb_fall_back_to_extension():
    assert sniff_kind(XLSX[:200], "form.xlsx") == "xlsx"
    assert sniff_kind(build_cfb(["Something"]), "old.xls") == "xls"
    assert sniff_kind(build_cfb(["Something"]), "old.bin") == "other"


def test_winmail_dat_is_recognised_as_tnef():
    data = b"\x78\x9f\x3e\x22" + b"\x01\x06\x90\x08\x00" * 10
    att = only_attachment(parse(build_submission(
        attachments=[("winmail.dat", data, "application/ms-tnef")])))
    assert (att.kind, att.data) == ("tnef", data)


def test_x_uuencode_transfer_encoding_keeps_every_byte():
    data = bytes(range(256)) * 3
    part = attachment_part("data.bin", data, "application/octet-stream", cte="x-uuencode",
                           filename_style="plain")
    assert only_attachment(parse(build_submission(attachments=[part]))).data == data


def test_inline_uuencoded_file_in_body_is_lifted_out():
    data = XLSX
    body = "ส่งไฟล์ครับ\r\n\r\n".encode() + uuencode(data, "form.xlsx") + "\r\nขอบคุณ\r\n".encode()
    raw = (b"From: a@b.go.th\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    msg = parse(raw)
    att = only_attachment(msg)
    assert (att.filename, att.kind, att.data) == ("form.xlsx", "xlsx", data)
    assert "begin 644" not in msg.body_text
    assert msg.body_text.startswith("ส่งไฟล์ครับ")


@pytest.mark.parametrize("cte", ["Base64", "base64 ", "BASE64\t"])
def test_transfer_encoding_names_are_case_and_space_tolerant(cte):
    part = (f'Content-Type: {XLSX_TYPE}; name="f.xlsx"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
            ).encode() + base64.encodebytes(XLSX)
    assert only_attachment(parse(build_submission(attachments=[part]))).data == XLSX


def test_base64_with_broken_padding_still_decodes():
    payload = base64.b64encode(b"hello world!!").rstrip(b"=")
    part = (b'Content-Type: application/octet-stream; name="h.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"\r\n")
    assert only_attachment(parse(build_submission(attachments=[part]))).data == b"hello world!!"


# --------------------------------------------------------------------------- forwarded mail


def test_forwarded_message_is_opened_one_level_with_original_sender():
    inner = build_submission(from_="ผอ. กองแผนงาน <Planning@ChiangMai.go.th>",
                             attachments=[(THAI_FILENAME, XLSX, XLSX_TYPE)],
                             message_id="<orig-1@chiangmai.go.th>")
    msg = parse(build_forward(inner, from_="clerk@gmail.com"))
    assert msg.from_address == "clerk@gmail.com"
    assert msg.forwarded_from == "planning@chiangmai.go.th"
    att = only_attachment(msg)
    assert (att.filename, att.kind, att.origin, att.data) == (THAI_FILENAME, "xlsx", "forwarded", XLSX)
    assert msg.body_text == "ส่งต่อแบบฟอร์มตามที่แนบ"  # the inner body is not mixed in
    assert "orig-1@chiangmai.go.th" in msg.enclosed_message_ids
    assert noise_reason(msg, OWN) is None
    assert bounced_message_ids(msg) == []  # enclosed ids only count in a bounce


def test_forward_of_a_forward_is_kept_whole_not_opened():
    innermost = build_submission(attachments=[("deep.xlsx", XLSX, XLSX_TYPE)])
    middle = build_forward(innermost, from_="middle@go.th")
    msg = parse(build_forward(middle, from_="outer@go.th"))
    assert msg.forwarded_from == "middle@go.th"
    att = only_attachment(msg)
    assert (att.filename, att.content_type, att.origin) == ("forwarded.eml", "message/rfc822",
                                                            "forwarded")
    assert b"deep.xlsx" in att.data
    assert any("ซ้อน" in n for n in msg.notes)


# --------------------------------------------------------------------------- zip archives


def _zip_message(archive: bytes, limits: Limits | None = None) -> ParsedMessage:
    raw = build_submission(attachments=[("forms.zip", archive, "application/zip")])
    return parse(raw, limits or Limits())


@pytest.mark.parametrize(
    ("encoding", "extra"), [("cp874", False), ("utf-8", False), ("cp437", True)]
)
def test_zip_member_names_in_thai(encoding, extra):
    name = "แบบฟอร์ม ลำพูน.xlsx" if encoding != "cp437" else "ลำพูน.xlsx"
    archive = build_zip([(name, XLSX)], name_encoding="cp874" if extra else encoding,
                        unicode_path_extra=extra)
    att = only_attachment(_zip_message(archive))
    assert (att.filename, att.kind, att.origin, att.data) == (name, "xlsx", "zip:forms.zip", XLSX)


def test_cp874_zip_name_really_lacks_the_utf8_flag():
    archive = build_zip([("ลำพูน.xlsx", XLSX)], name_encoding="cp874")
    info = zipfile.ZipFile(io.BytesIO(archive)).infolist()[0]
    assert not info.flag_bits & 0x800
    assert "ลำพูน".encode("cp874") in archive


def test_zip_directories_are_skipped_and_paths_stripped():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("จังหวัด/", b"")
        zf.writestr("จังหวัด/../../form.xlsx", XLSX)
    msg = _zip_message(buf.getvalue())
    assert [a.filename for a in msg.attachments] == ["form.xlsx"]


def test_zip_bomb_is_refused_before_inflating():
    archive = build_zip([("bomb.txt", b"\x00" * (4 * 1024 * 1024))])
    assert len(archive) < 20_000
    msg = _zip_message(archive)
    att = only_attachment(msg)
    assert (att.kind, att.filename, att.data) == ("zip", "forms.zip", archive)
    assert any("อัตราการบีบอัด" in n for n in msg.notes)


def test_zip_with_too_many_members_is_refused():
    archive = build_zip([(f"f{i}.xlsx", XLSX) for i in range(5)])
    msg = _zip_message(archive, limits=Limits(zip_max_members=3))
    assert only_attachment(msg).kind == "zip"
    assert any("5 ไฟล์" in n and "3 ไฟล์" in n for n in msg.notes)


def test_zip_over_total_size_is_refused():
    archive = build_zip([("a.xlsx", XLSX), ("b.xlsx", XLSX)])
    msg = _zip_message(archive, limits=Limits(zip_max_total_bytes=len(XLSX) + 10))
    assert only_attachment(msg).kind == "zip"
    assert any("ขนาดรวม" in n for n in msg.notes)


def test_zip_member_over_size_is_skipped_others_kept():
    archive = build_zip([("small.txt", b"ok"), ("big.xlsx", XLSX)])
    msg = _zip_message(archive, limits=Limits(zip_max_member_bytes=100))
    assert [a.filename for a in msg.attachments] == ["small.txt"]
    assert any("big.xlsx" in n for n in msg.notes)


def test_encrypted_zip_member_is_skipped_with_note():
    archive = build_zip([("secret.xlsx", XLSX), ("open.xlsx", XLSX)], encrypted={"secret.xlsx"})
    msg = _zip_message(archive)
    assert [(a.filename, a.kind) for a in msg.attachments] == [("open.xlsx", "xlsx")]
    assert any("secret.xlsx" in n and "รหัสผ่าน" in n for n in msg.notes)


def test_zip_with_only_encrypted_members_stays_a_zip():
    archive = build_zip([("secret.xlsx", XLSX)], encrypted={"secret.xlsx"})
    msg = _zip_message(archive)
    assert only_attachment(msg).kind == "zip"
    assert msg.notes


def test_nested_zip_is_not_opened_and_is_noted():
    inner = build_zip([("inner.xlsx", XLSX)])
    archive = build_zip([("inner.zip", inner), ("outer.xlsx", XLSX)])
    msg = _zip_message(archive)
    assert [a.filename for a in msg.attachments] == ["outer.xlsx"]
    assert any("inner.zip" in n and "ซ้อน" in n for n in msg.notes)


def test_corrupt_zip_stays_with_note():
    archive = build_zip([("a.xlsx", XLSX)])[:-30]
    msg = _zip_message(archive)
    assert only_attachment(msg).kind == "zip"
    assert any("forms.zip" in n for n in msg.notes)


# --------------------------------------------------------------------------- caps


def test_attachments_beyond_the_count_cap_are_dropped_with_note():
    atts = [(f"f{i}.xlsx", XLSX, XLSX_TYPE) for i in range(4)]
    msg = parse(build_submission(attachments=atts), Limits(max_attachments=2))
    assert [a.filename for a in msg.attachments] == ["f0.xlsx", "f1.xlsx"]
    assert any("2 ไฟล์" in n for n in msg.notes)


def test_attachment_over_size_cap_is_dropped_with_note():
    atts = [("big.xlsx", XLSX, XLSX_TYPE), ("small.txt", b"ok", "text/plain")]
    msg = parse(build_submission(attachments=atts), Limits(max_attachment_bytes=len(XLSX) - 1))
    assert [a.filename for a in msg.attachments] == ["small.txt"]
    assert any("big.xlsx" in n and "ใหญ่" in n for n in msg.notes)


# --------------------------------------------------------------------------- headers


def test_envelope_fields_are_normalised():
    raw = build_submission(
        from_="Saraban <SARABAN@ChiangMai.GO.TH>", to="Intake <Intake.Form@Gmail.com>, x@y.th",
        message_id="<abc-123@chiangmai.go.th>",
        extra_headers=[
            "Cc: =?utf-8?B?" + base64.b64encode("สมชาย, ผอ.".encode()).decode() + "?= <Boss@Go.th>",
            "Reply-To: <Reply@Go.th>",
            "In-Reply-To: <ack-9@intake>",
            "References: <a@x>\r\n <b@y>  <ack-9@intake>",
            "Authentication-Results: mx.google.com; dmarc=pass",
            "Authentication-Results: evil.example; dmarc=pass",
        ])
    msg = parse(raw)
    assert msg.from_address == "saraban@chiangmai.go.th"
    assert msg.from_name == "Saraban"
    assert msg.to == ["intake.form@gmail.com", "x@y.th"]
    assert msg.cc == ["boss@go.th"]  # a comma inside the decoded name does not split the address
    assert msg.reply_to == "reply@go.th"
    assert msg.message_id == "abc-123@chiangmai.go.th"
    assert msg.in_reply_to == "ack-9@intake"
    assert msg.references == ["a@x", "b@y", "ack-9@intake"]
    assert msg.date == datetime(2024, 7, 2, 9, 15, tzinfo=timezone(timedelta(hours=7)))
    assert msg.headers["authentication-results"] == [
        "mx.google.com; dmarc=pass", "evil.example; dmarc=pass"]
    assert msg.headers["content-type"][0].startswith("multipart/mixed")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 02 Jul 2024 02:15:00 -0000", datetime(2024, 7, 2, 2, 15, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
    ],
)
def test_date_is_aware_or_none(value, expected):
    raw = build_submission(date=value)
    assert parse(raw).date == expected


def test_html_only_body_is_stripped_to_text():
    html = ("<html><head><title>t</title><style>p{}</style></head><body><p>เรียน&nbsp;ท่าน</p>"
            "<script>alert(1)</script><div>แนบ &amp; ส่ง</div></body></html>")
    msg = parse(build_multipart(envelope_headers(), [text_part(html, subtype="html")]))
    assert msg.body_text == "เรียน ท่าน\nแนบ & ส่ง"


def test_plain_part_preferred_over_html_alternative():
    alt = build_multipart([], [text_part("ข้อความ"), text_part("<b>HTML</b>", subtype="html")],
                          subtype="alternative", boundary="=_alt_=")
    assert parse(build_multipart(envelope_headers(), [alt])).body_text == "ข้อความ"


# --------------------------------------------------------------------------- never raise


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 500,
        bytes(range(256)) * 4,
        b"this is not an e-mail at all",
        build_submission(attachments=[(THAI_FILENAME, XLSX, XLSX_TYPE)])[:700],
        build_submission().replace(b"=_b0und4ry_=--", b""),
        b"Content-Type: multipart/mixed\r\n\r\nno boundary",
        b"From: a@b\r\nContent-Type: message/rfc822\r\n\r\n",
        b"Subject: =?utf-8?B?!!!?= =?nosuchcharset?Q?abc?=\r\n\r\nbody",
    ],
)
def test_malformed_input_never_raises(raw):
    msg = parse(raw)
    assert isinstance(msg, ParsedMessage)


def test_non_email_bytes_give_empty_result_with_note():
    msg = parse(b"\x00\xff" * 100)
    assert msg.subject == "" and msg.attachments == [] and msg.headers == {}
    assert msg.notes


def test_broken_encoded_words_keep_readable_text():
    msg = parse(b"Subject: =?nosuchcharset?Q?abc?= plain\r\nFrom: a@b.th\r\n\r\nbody")
    assert msg.subject == "abc plain"
    assert msg.body_text == "body"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_parse_never_raises_on_arbitrary_bytes(raw):
    assert isinstance(parse(raw), ParsedMessage)


_VALID = build_submission(attachments=[(THAI_FILENAME, XLSX, XLSX_TYPE),
                                       ("a.zip", build_zip([("x.xlsx", XLSX)]), "application/zip")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=20))
def test_parse_never_raises_on_damaged_messages(flips):
    raw = bytearray(_VALID)
    for pos, value in flips:
        raw[pos] = value
    assert isinstance(parse(bytes(raw)), ParsedMessage)


# --------------------------------------------------------------------------- noise (RFC 3834)


def _with(*headers: str, from_: str = "saraban@chiangmai.go.th") -> ParsedMessage:
    return parse(build_submission(from_=from_, extra_headers=list(headers)))


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_with("Auto-Submitted: auto-replied"), "auto-submitted"),
        (_with("Auto-Submitted: auto-generated; owner-email=x@y"), "auto-submitted"),
        (_with("Precedence: bulk"), "precedence:bulk"),
        (_with("Precedence: list"), "precedence:list"),
        (_with("Precedence: Junk"), "precedence:junk"),
        (_with("List-Id: <moi-news.example.go.th>"), "list-id"),
        (_with("List-Unsubscribe: <mailto:leave@example.go.th>"), "list-unsubscribe"),
        (_with("X-Auto-Response-Suppress: All"), "x-auto-response-suppress"),
        (_with("X-Auto-Response-Suppress: DR, OOF, AutoReply"), "x-auto-response-suppress"),
        (_with("X-Autoreply: yes"), "auto-reply-header"),
        (_with("Return-Path: <>"), "empty-return-path"),
        (_with(from_="Mail Delivery System <MAILER-DAEMON@mx.chiangmai.go.th>"), "mailer-daemon"),
        (_with(from_="postmaster@chiangmai.go.th"), "mailer-daemon"),
        (_with(from_="noreply@egov.go.th"), "noreply"),
        (_with(from_="No-Reply@accounts.google.com"), "noreply"),
        (_with(from_="do-not-reply@moi.go.th"), "noreply"),
        (_with(from_="noreply+bounces@example.com"), "noreply"),
        (parse(build_bounce("ack-1@intake")), "delivery-report"),
        (_with(from_="Intake.Form@gmail.com"), "own-address"),
    ],
)
def test_noise_rules(msg, reason):
    assert noise_reason(msg, OWN) == reason


@pytest.mark.parametrize(
    "msg",
    [
        _with(),
        _with("Auto-Submitted: no"),
        _with("Precedence: first-class"),
        _with("Return-Path: <saraban@chiangmai.go.th>"),
        # Receipt-only suppression (Outlook adds it to ordinary mail): our ack may still go.
        _with("X-Auto-Response-Suppress: DR, RN, NRN"),
        _with(from_="replyto@chiangmai.go.th"),
        _with(from_="daemon.lover@chiangmai.go.th"),
    ],
)
def test_normal_messages_are_not_noise(msg):
    assert noise_reason(msg, OWN) is None
    assert not is_bounce(msg)
    assert bounced_message_ids(msg) == []


def test_out_of_office_reply_to_our_ack_is_noise_and_keeps_thread_reference():
    # Exchange/Outlook automatic reply, as it arrives in Gmail
    msg = _with("Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All",
                "In-Reply-To: <ack-3@intake.local>", "Thread-Topic: ack")
    assert noise_reason(msg, OWN) == "auto-submitted"
    assert msg.in_reply_to == "ack-3@intake.local"
    assert not is_bounce(msg)


def test_own_address_only_counts_when_given():
    msg = _with(from_="intake.form@gmail.com")
    assert noise_reason(msg) is None
    assert noise_reason(msg, OWN) == "own-address"


# --------------------------------------------------------------------------- bounces


@pytest.mark.parametrize("returned", ["rfc822-headers", "rfc822"])
def test_bounce_returns_our_message_id(returned):
    msg = parse(build_bounce("ack-42.x7@intake.local", returned=returned))
    assert is_bounce(msg)
    assert bounced_message_ids(msg) == ["ack-42.x7@intake.local"]
    assert msg.forwarded_from is None  # a returned copy is not a forwarded submission
    assert msg.attachments == []


def test_plain_text_bounce_quoting_headers_is_matched():
    raw = (b"From: MAILER-DAEMON@mail.province.go.th\r\nTo: intake.form@gmail.com\r\n"
           b"Subject: failure notice\r\nMessage-ID: <q1@mail.province.go.th>\r\n\r\n"
           b"Sorry, I couldn't deliver.\r\n--- Below this line is a copy of the message.\r\n\r\n"
           b"Message-ID: <ack-7@intake.local>\r\nSubject: ack\r\n")
    msg = parse(raw)
    assert is_bounce(msg)
    assert bounced_message_ids(msg) == ["ack-7@intake.local"]


def test_delivery_report_for_read_receipt_is_noise_but_not_bounce():
    mdn = build_multipart(["From: boss@chiangmai.go.th", "Subject: Read: x"],
                          [text_part("อ่านแล้ว"), b"Content-Type: message/disposition-notification"
                           b"\r\n\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"],
                          subtype="report", extra_params="; report-type=disposition-notification")
    msg = parse(mdn)
    assert noise_reason(msg) == "delivery-report"
    assert not is_bounce(msg)


def test_encoded_word_helper_round_trip():
    # guards the builders the other tests depend on
    assert parse(f"Subject: {encode_word(THAI_SUBJECT, 'windows-874', 'Q')}\r\n\r\n".encode()
                 ).subject == THAI_SUBJECT


# --------------------------------------------------------------------------- long bodies set aside


def _same_parse(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> ParsedMessage:
    """parse() with and without long base64 runs set aside must give the same result."""
    import intake.mimetext as mimetext

    with_set_aside = parse(raw)
    monkeypatch.setattr(mimetext, "_SET_ASIDE_MIN", 1 << 40)
    without = parse(raw)
    monkeypatch.undo()
    assert with_set_aside == without
    return with_set_aside


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_set_aside_bodies_come_back_byte_for_byte(eol: bytes, monkeypatch) -> None:
    big = os.urandom(300 * 1024)
    raw = build_submission(
        subject="ส่งแบบฟอร์ม", from_="a@chiangmai.go.th", to="x@gmail.com", body="ข้อความ\n",
        attachments=[("a.bin", big, "application/octet-stream"),
                     ("b.bin", os.urandom(100 * 1024), "application/octet-stream")],
    )  # fmt: skip
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", eol)
    parsed = _same_parse(raw, monkeypatch)
    assert [a.data for a in parsed.attachments][0] == big


def test_set_aside_keeps_text_bodies_and_forwarded_mail_whole(monkeypatch) -> None:
    words = b"\n".join(b"Word%d" % i for i in range(20000)) + b"\n"  # base64-like text lines
    inner = (b"From: saraban@chiangmai.go.th\nSubject: inner\nContent-Type: text/plain\n\n"
             + words)  # fmt: skip
    raw = (b"From: a@b.go.th\nSubject: fwd\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\n"
           + words + b"--XX\nContent-Type: message/rfc822\n\n" + inner + b"--XX--\n")  # fmt: skip
    parsed = _same_parse(raw, monkeypatch)
    assert parsed.body_text.endswith("Word19999")
    assert parsed.forwarded_from == "saraban@chiangmai.go.th"


def test_a_forged_marker_is_only_text(monkeypatch) -> None:
    payload = base64.encodebytes(os.urandom(200 * 1024))
    raw = (b"From: a@b.go.th\nSubject: s\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\n"
           b"XINTAKESETASIDE0000000000000000N0\n--XX\n"
           b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
           b"Content-Disposition: attachment; filename=f.bin\n\n" + payload + b"--XX--\n")  # fmt: skip
    parsed = _same_parse(raw, monkeypatch)
    assert "XINTAKESETASIDE0000000000000000N0" in parsed.body_text
    assert parsed.attachments[0].data == base64.decodebytes(payload)


def test_a_mail_whose_text_is_too_long_is_headers_only_with_a_refusal() -> None:
    raw = (b"From: Somchai <a@chiangmai.go.th>\nSubject: =?utf-8?b?4Liq4LmI4LiH?=\n\n"
           + b"text with spaces: not set aside\n" * 300_000)  # fmt: skip
    parsed = parse(raw)
    assert parsed.from_address == "a@chiangmai.go.th" and parsed.subject == "ส่ง"
    assert parsed.attachments == [] and parsed.body_text == ""
    [note] = parsed.notes
    assert note.code == "too_large" and "เกินกำหนด 8 MB" in note
