"""What the web page shows, built from the status report: pure data, no HTTP and no SQL here.

The map is a tile cartogram: each of the 76 provinces is one square at a fixed (column, row)
that keeps its neighbours roughly where they are on a map of Thailand (north at the top, the
northeast to the right, the peninsula down the left), so a coordinator sees at a glance which
part of the country is late.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

from markupsafe import Markup

from intake.clock import BANGKOK, as_utc
from intake.reports import EntityStatus, StatusReport

# (column, row) of each province on an 11 x 18 grid. Bangkok (TH-10) was not asked and is drawn
# as a plain landmark so the centre of the country is easy to find.
TILES: dict[str, tuple[int, int]] = {
    "TH-57": (3, 0), "TH-58": (1, 1), "TH-50": (2, 1), "TH-56": (3, 1), "TH-55": (4, 1),
    "TH-51": (2, 2), "TH-52": (3, 2), "TH-54": (4, 2), "TH-43": (7, 2), "TH-38": (8, 2),
    "TH-63": (2, 3), "TH-64": (3, 3), "TH-53": (4, 3), "TH-42": (5, 3), "TH-39": (6, 3),
    "TH-41": (7, 3), "TH-47": (8, 3), "TH-48": (9, 3), "TH-62": (2, 4), "TH-66": (3, 4),
    "TH-65": (4, 4), "TH-67": (5, 4), "TH-40": (6, 4), "TH-44": (7, 4), "TH-46": (8, 4),
    "TH-49": (9, 4), "TH-60": (3, 5), "TH-36": (6, 5), "TH-45": (7, 5), "TH-35": (8, 5),
    "TH-37": (9, 5), "TH-61": (2, 6), "TH-18": (3, 6), "TH-17": (4, 6), "TH-16": (5, 6),
    "TH-30": (6, 6), "TH-31": (7, 6), "TH-32": (8, 6), "TH-33": (9, 6), "TH-34": (10, 6),
    "TH-71": (1, 7), "TH-72": (2, 7), "TH-15": (3, 7), "TH-14": (4, 7), "TH-19": (5, 7),
    "TH-70": (1, 8), "TH-73": (2, 8), "TH-12": (3, 8), "TH-13": (4, 8), "TH-26": (5, 8),
    "TH-25": (6, 8), "TH-75": (1, 9), "TH-74": (2, 9), "TH-10": (3, 9), "TH-11": (4, 9),
    "TH-24": (5, 9), "TH-27": (6, 9), "TH-76": (1, 10), "TH-20": (4, 10), "TH-21": (5, 10),
    "TH-22": (6, 10), "TH-77": (1, 11), "TH-23": (6, 11), "TH-86": (1, 12), "TH-85": (0, 13),
    "TH-84": (1, 13), "TH-82": (0, 14), "TH-81": (1, 14), "TH-80": (2, 14), "TH-83": (0, 15),
    "TH-92": (1, 15), "TH-93": (2, 15), "TH-91": (1, 16), "TH-90": (2, 16), "TH-94": (3, 16),
    "TH-95": (3, 17), "TH-96": (4, 17),
}  # fmt: skip
GRID_COLUMNS, GRID_ROWS = 11, 18
# Names too long for a tile, written the way Thai officials shorten them.
SHORT_NAMES = {
    "พระนครศรีอยุธยา": "อยุธยา",
    "ประจวบคีรีขันธ์": "ประจวบฯ",
    "นครศรีธรรมราช": "นครศรีฯ",
    "อุบลราชธานี": "อุบลฯ",
    "หนองบัวลำภู": "หนองบัวฯ",
    "สุราษฎร์ธานี": "สุราษฎร์ฯ",
    "สมุทรสงคราม": "สมุทรสงคราม",
    "กรุงเทพมหานคร": "กรุงเทพฯ",
}
STATUS_LABEL = {"accepted": "รับแล้ว", "needs_correction": "รอแก้ไข", "missing": "ยังไม่ส่ง"}


@dataclass(frozen=True)
class Tile:
    id: str
    name: str
    short: str
    status: str  # accepted | needs_correction | missing | landmark
    late: bool
    column: int
    row: int
    cluster: str = ""
    receipt: str | None = None
    extended: bool = False


@dataclass
class ClusterCard:
    entity: EntityStatus
    provinces: list[EntityStatus] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(p.status for p in self.provinces)


@dataclass(frozen=True)
class Countdown:
    past: bool
    days: int
    hours: int
    text_th: str


@dataclass
class Dashboard:
    report: StatusReport
    tiles: list[Tile]
    regions: list[tuple[str, list[ClusterCard]]]
    countdown: Countdown
    percent: int
    unverified: int = 0  # expected senders without a verified address: no reminder reaches them

    @property
    def summary(self) -> dict[str, int]:
        return self.report.summary


def countdown(deadline: datetime, now: datetime) -> Countdown:
    """Days and hours to the deadline (or past it), in Thai."""
    seconds = int((as_utc(deadline) - as_utc(now)).total_seconds())
    past = seconds < 0
    days, rest = divmod(abs(seconds), 86400)
    hours = rest // 3600
    span = f"{days} วัน {hours} ชั่วโมง" if days else f"{hours} ชั่วโมง"
    text = f"เลยกำหนดส่งมาแล้ว {span}" if past else f"เหลือเวลาอีก {span}"
    return Countdown(past, days, hours, text)


def short_name(name: str) -> str:
    return SHORT_NAMES.get(name, name)


def dashboard(report: StatusReport, unverified: int = 0) -> Dashboard:
    by_id = {e.id: e for e in report.entities}
    clusters = {e.id: e.name_th for e in report.entities if e.kind == "cluster"}
    tiles = []
    for sender_id, (column, row) in TILES.items():
        entity = by_id.get(sender_id)
        if entity is None:  # Bangkok, or a province not expected this time
            tiles.append(Tile(sender_id, "กรุงเทพมหานคร" if sender_id == "TH-10" else sender_id,
                              short_name("กรุงเทพมหานคร") if sender_id == "TH-10" else sender_id,
                              "landmark", False, column, row))  # fmt: skip
            continue
        tiles.append(
            Tile(
                entity.id, entity.name_th, short_name(entity.name_th), entity.status,
                entity.late, column, row, clusters.get(entity.cluster_id or "", ""),
                entity.receipt, entity.deadline_override is not None,
            )
        )  # fmt: skip
    cards: dict[str, ClusterCard] = {
        e.id: ClusterCard(e) for e in report.entities if e.kind == "cluster"
    }
    for e in report.entities:
        if e.kind == "province" and e.cluster_id in cards:
            cards[e.cluster_id].provinces.append(e)
    regions = [
        (region, list(group))
        for region, group in groupby(cards.values(), key=lambda c: c.entity.region_th)
    ]
    summary = report.summary
    percent = round(100 * summary["accepted"] / summary["expected"]) if summary["expected"] else 0
    return Dashboard(
        report, tiles, regions, countdown(report.deadline, report.generated_at), percent, unverified
    )


def qr_svg(url: str) -> Markup:
    """The link as a QR code, inline SVG (no image file, no outside service)."""
    import segno

    code = segno.make(url, error="m", micro=False)
    svg = code.svg_inline(scale=4, dark="#0b2a55", light="#ffffff", border=2)
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code" ', 1))


def bangkok_input_value(when: datetime | None) -> str:
    """A `datetime-local` input value in Bangkok time (the page speaks Bangkok time only)."""
    if when is None:
        return ""
    return as_utc(when).astimezone(BANGKOK).strftime("%Y-%m-%dT%H:%M")
