"""The expected senders, read from `config/senders/` (plain fact, editable by the coordinator).

`provinces.csv` and `clusters.csv` are the reference data as published; `addresses.csv`
(`sender_id,address`) holds the known e-mail addresses, empty at first. Either reference file may
carry an optional `domains` column (`;`-separated, e.g. `chiangmai.go.th`): an address in one of
those domains is verified for that sender when Gmail's Authentication-Results show DMARC pass.
Bangkok is in the reference data but was not addressed by the letter, so it is not expected
unless configured.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from intake.errors import ConfigError

BANGKOK = "TH-10"
_LEADING_VOWELS = "เแโใไ"


@dataclass(frozen=True)
class RosterEntry:
    id: str
    kind: str  # province | cluster
    name_th: str
    name_en: str
    region_th: str
    region_en: str
    cluster_id: str | None
    aliases: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    expected: bool = True
    domains: tuple[str, ...] = ()  # mail domains of its own (verified with DMARC pass)
    region_order: int = 0
    cluster_order: int = 0

    @property
    def sort_key(self) -> str:
        return thai_sort_key(self.name_th)


@dataclass(frozen=True)
class Roster:
    entries: tuple[RosterEntry, ...]
    by_id: dict[str, RosterEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: list[RosterEntry]) -> Roster:
        return cls(tuple(entries), {e.id: e for e in entries})

    @property
    def expected(self) -> list[RosterEntry]:
        return [e for e in self.entries if e.expected]


def thai_sort_key(text: str) -> str:
    """Dictionary order for Thai: a leading vowel (เ แ โ ใ ไ) sorts after its consonant."""
    text = unicodedata.normalize("NFC", text)
    out = []
    words = text.split()
    for word in words:
        chars = list(word)
        i = 0
        while i < len(chars) - 1:
            if chars[i] in _LEADING_VOWELS:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
                i += 2
            else:
                i += 1
        out.append("".join(chars))
    return " ".join(out)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise ConfigError(f"roster file not found: {path}")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(";") if part.strip())


def _domains(value: str) -> tuple[str, ...]:
    """`chiangmai.go.th; @ChiangMai.go.th.` -> ("chiangmai.go.th",): lowercased, no `@` or dots
    at the ends; a value without a dot is not a mail domain and is dropped."""
    out = (part.strip().lstrip("@").strip(".").lower() for part in _split(value))
    return tuple(d for d in out if "." in d)


def load_roster(senders_dir: Path, include_bangkok: bool = False) -> Roster:
    clusters = _read_csv(senders_dir / "clusters.csv")
    provinces = _read_csv(senders_dir / "provinces.csv")
    addresses: dict[str, list[str]] = {}
    addr_file = senders_dir / "addresses.csv"
    if addr_file.exists():
        for row in _read_csv(addr_file):
            if row.get("sender_id") and row.get("address"):
                addresses.setdefault(row["sender_id"], []).append(row["address"].lower())

    regions: list[str] = []
    cluster_info: dict[str, tuple[str, str, int, int]] = {}
    entries: list[RosterEntry] = []
    for index, row in enumerate(clusters):
        if row["region_th"] not in regions:
            regions.append(row["region_th"])
        region_order = regions.index(row["region_th"])
        cluster_info[row["cluster_id"]] = (row["region_th"], row["region_en"], region_order, index)
        entries.append(
            RosterEntry(
                id=row["cluster_id"],
                kind="cluster",
                name_th=row["name_th"],
                name_en=row["name_en"],
                region_th=row["region_th"],
                region_en=row["region_en"],
                cluster_id=row["cluster_id"],
                addresses=tuple(addresses.get(row["cluster_id"], ())),
                domains=_domains(row.get("domains", "")),
                region_order=region_order,
                cluster_order=index,
            )
        )
    for row in provinces:
        cid = row.get("cluster_id") or None
        region_th, region_en, region_order, cluster_order = cluster_info.get(
            cid or "", ("กรุงเทพมหานคร", "Bangkok", len(regions), len(clusters))
        )
        if cid and cid not in cluster_info:
            raise ConfigError(f"{row['code']}: unknown cluster_id {cid!r} in provinces.csv")
        entries.append(
            RosterEntry(
                id=row["code"],
                kind="province",
                name_th=row["name_th"],
                name_en=row["name_en"],
                region_th=region_th,
                region_en=region_en,
                cluster_id=cid,
                aliases=_split(row.get("aliases_th", "")) + _split(row.get("aliases_en", "")),
                addresses=tuple(addresses.get(row["code"], ())),
                domains=_domains(row.get("domains", "")),
                expected=include_bangkok or row["code"] != BANGKOK,
                region_order=region_order,
                cluster_order=cluster_order,
            )
        )
    unknown = set(addresses) - {e.id for e in entries}
    if unknown:
        raise ConfigError(f"addresses.csv names unknown senders: {', '.join(sorted(unknown))}")
    return Roster.of(entries)
