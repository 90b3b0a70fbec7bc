"""Append one province submission to the dev mailbox (run inside the `devmail` container by
deploy/compose-test.sh): a valid form from Lampang, built with the published template, with a
unique Message-ID. Prints the sender address the reply must go to."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime

from imapclient import IMAPClient

from intake.demo_mail import XLSX, _header, _mail, _parts, default_spec
from intake.forms.template import filled_form
from intake.settings import load_settings

SENDER = ("สนจ.ลำปาง", "saraban@lampang.go.th")


def main() -> int:
    imap = load_settings().imap
    when = datetime.fromisoformat("2024-01-20T09:30:00+07:00")
    form = filled_form(default_spec(), _header("ลำปาง", phone="054222333"), _parts())
    raw = _mail(
        0, SENDER, "ส่งแบบฟอร์มข้อมูลการยกระดับเมือง จังหวัดลำปาง", when=when,
        attachments=[("ลำปาง.xlsx", form, XLSX)],
    )  # fmt: skip
    raw = raw.replace(b"<demo-0@lampang.go.th>", f"<{uuid.uuid4()}@lampang.go.th>".encode())
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1143
    with IMAPClient("127.0.0.1", port=port, ssl=False) as client:
        client.login(imap.username or "intake", imap.password.get_secret_value() or "intake")
        client.append("INBOX", raw, msg_time=when)
    print(SENDER[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
