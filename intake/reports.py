"""The coordinator's view: status of every expected sender, and the review list.

The status rules, in one place:
- `accepted`: at least one valid form (the latest valid version counts);
- `needs_correction`: forms came, none valid;
- `missing`: nothing came;
- `late`: the first valid form arrived (IMAP INTERNALDATE) after the sender's deadline (the
  campaign deadline, or the one extended for that sender);
- `verified`: whether the version that counts came from an address verified for the sender
  (roster, roster domain with DMARC pass, coordinator); False: it counts provisionally until the
  coordinator confirms or rejects it (`intake review`); null when no version counts.

The JSON layout is a contract relied on from outside; keep it exactly.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from intake.clock import BANGKOK, as_utc
from storage import queries

STATUS_TH = {"accepted": "รับแล้ว", "needs_correction": "รอแก้ไข", "missing": "ยังไม่ส่ง"}
KIND_TH = {"province": "จังหวัด", "cluster": "กลุ่มจังหวัด"}


@dataclass(frozen=True, slots=True)  # slots: half the cost of building 10,000 of them
class EntityStatus:
    id: str
    kind: str
    name_th: str
    name_en: str
    region_th: str
    cluster_id: str | None
    status: str
    late: bool
    last_received_at: datetime | None
    versions: int
    receipt: str | None
    sort_key: str
    deadline_override: datetime | None = None  # this sender's own, later deadline (if extended)
    verified: bool | None = None  # the counting version's address was verified (None: none counts)


@dataclass(frozen=True)
class StatusReport:
    deadline: datetime
    generated_at: datetime
    entities: list[EntityStatus]
    review: list[queries.ReviewRow]

    @property
    def summary(self) -> dict[str, int]:
        counts = {
            "expected": len(self.entities),
            "accepted": 0,
            "needs_correction": 0,
            "missing": 0,
            "late": 0,
        }
        for entity in self.entities:
            counts[entity.status] += 1
            counts["late"] += int(entity.late)
        return counts


def build_report(session: Session, deadline: datetime, now: datetime) -> StatusReport:
    entities = []
    for row in queries.sender_status_rows(session):
        if row.valid_versions:
            status = "accepted"
        elif row.versions:
            status = "needs_correction"
        else:
            status = "missing"
        own_deadline = as_utc(row.deadline_override) if row.deadline_override else deadline
        late = row.first_valid_at is not None and as_utc(row.first_valid_at) > own_deadline
        entities.append(
            EntityStatus(
                id=row.id,
                kind=row.kind.value,
                name_th=row.name_th,
                name_en=row.name_en,
                region_th=row.region_th,
                cluster_id=row.cluster_id,
                status=status,
                late=late,
                last_received_at=as_utc(row.last_received_at) if row.last_received_at else None,
                versions=row.versions,
                receipt=row.receipt,
                sort_key=row.sort_key,
                deadline_override=as_utc(row.deadline_override) if row.deadline_override else None,
                verified=row.verified,
            )
        )
    entities.sort(key=lambda e: e.sort_key)
    return StatusReport(deadline, now, entities, queries.open_review(session))


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).astimezone(BANGKOK).isoformat() if value else None


def to_json_dict(report: StatusReport) -> dict[str, Any]:
    return {
        "deadline": _iso(report.deadline),
        "generated_at": _iso(report.generated_at),
        "summary": report.summary,
        "entities": [
            {
                "id": e.id,
                "kind": e.kind,
                "name_th": e.name_th,
                "name_en": e.name_en,
                "status": e.status,
                "late": e.late,
                "last_received_at": _iso(e.last_received_at),
                "versions": e.versions,
                "receipt": e.receipt,
                "verified": e.verified,
            }
            for e in report.entities
        ],
        "review": [
            {
                "message_id": r.message_id,
                "from": r.from_address,
                "subject": r.subject,
                "received_at": _iso(r.received_at),
                "reason": r.reason,
            }
            for r in report.review
        ],
    }


def to_json(report: StatusReport) -> str:
    return json.dumps(to_json_dict(report), ensure_ascii=False, indent=2) + "\n"


def csv_safe(value: Any) -> str:
    """Neutralise spreadsheet formula injection: a cell may not start with = + - @ (or tab/CR)."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def to_csv(report: StatusReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "id",
            "kind",
            "name_th",
            "name_en",
            "region_th",
            "status",
            "late",
            "last_received_at",
            "versions",
            "receipt",
        ]
    )
    for e in report.entities:
        writer.writerow(
            [
                csv_safe(v)
                for v in (
                    e.id,
                    e.kind,
                    e.name_th,
                    e.name_en,
                    e.region_th,
                    e.status,
                    str(e.late).lower(),
                    _iso(e.last_received_at) or "",
                    e.versions,
                    e.receipt or "",
                )
            ]
        )
    return out.getvalue()


def days_to_deadline(deadline: datetime, now: datetime) -> int:
    """Whole Bangkok calendar days from today to the deadline day (negative once past)."""
    return (deadline.astimezone(BANGKOK).date() - now.astimezone(BANGKOK).date()).days
