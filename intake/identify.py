"""Which expected sender a form or a message belongs to. Pure: roster in, match or reasons out.

Evidence is weighed in a fixed order, strongest first: the name written in the form's own header
(`ชื่อกลุ่มจังหวัด/จังหวัด`), then the sender's address against the roster, then the thread (a reply
to a mail of ours belongs to the sender that mail was about: `In-Reply-To`/`References`, or our
receipt number in the subject), then names found in the subject and body. Identity is not trust:
whether the address may speak for the sender is decided in intake/record.py. Nothing is guessed: no match or two matches is an answer with a reason, and the
pipeline sends such messages to the coordinator's review list.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from intake.roster import Roster, RosterEntry
from intake.thai import to_arabic_digits

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# Prefixes people write before a name; longest first so "กลุ่มจังหวัด" wins over "จังหวัด".
_PREFIXES = (
    "กลุ่มจังหวัด",
    "จังหวัด",
    "จ.",
    "จ ",
    "provincialcluster",
    "province",
    "changwat",
)
_SUFFIXES = ("provincialcluster", "province", "cluster")
_PUNCT = re.compile(r"[\s\-_.,:;()\[\]'\"“”‘’/]+")


@dataclass(frozen=True)
class Match:
    """The outcome of identification: one sender, or none with a reason (and the candidates)."""

    sender_id: str | None
    method: str  # form_header | address | thread | subject | body | none | coordinator
    reason: str | None = None  # unknown | ambiguous | conflict (when sender_id is None)
    candidates: tuple[str, ...] = ()


def normalise_name(text: str) -> str:
    """A key that ignores spacing, case, zero-width characters, digit script and prefixes."""
    text = unicodedata.normalize("NFC", text).translate(_ZERO_WIDTH)
    text = to_arabic_digits(text).casefold().strip()
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix):
                text = text[len(prefix) :].lstrip()
                changed = True
    text = _PUNCT.sub("", text)
    for suffix in _SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
    return text


# Our receipt numbers as a subject carries them back: `[เลขรับ 2567-0001]`, `เลขรับที่ ๒๕๖๗-๐๐๐๑`.
_RECEIPT = re.compile(r"เลขรับ\s*(?:ที่)?\s*:?\s*(\d{4}-\d{4,8})(?!\d)")


def receipts_in(subject: str) -> list[str]:
    """The receipt numbers a subject quotes after `เลขรับ` (a bare `2567-2570` is a year range)."""
    return list(dict.fromkeys(_RECEIPT.findall(to_arabic_digits(subject or ""))))


def _names(entry: RosterEntry) -> set[str]:
    names = {entry.name_th, entry.name_en, *entry.aliases}
    return {key for key in (normalise_name(n) for n in names) if key}


class Identifier:
    """Name and address indexes over the roster, built once per run."""

    def __init__(self, roster: Roster, learned: dict[str, set[str]] | None = None) -> None:
        self.roster = roster
        self._by_name: dict[str, set[str]] = {}
        for entry in roster.entries:
            for key in _names(entry):
                self._by_name.setdefault(key, set()).add(entry.id)
        self._by_address: dict[str, set[str]] = {}
        for entry in roster.entries:
            for address in entry.addresses:
                self._by_address.setdefault(address.lower(), set()).add(entry.id)
        self.learn(learned or {})
        # for scanning free text: longest names first, so "ภาคเหนือตอนบน1" is not read as less
        self._scan_keys = sorted(
            (k for k in self._by_name if len(k) >= 3), key=len, reverse=True
        )

    def learn(self, learned: dict[str, set[str]]) -> None:
        """Add addresses learned since this index was built (in place: copies share it)."""
        for sender_id, addresses in learned.items():
            for address in addresses:
                self._by_address.setdefault(address.lower(), set()).add(sender_id)

    def by_form_name(self, name: str | None, kind_label: str | None = None) -> Match:
        """The form header's name; `kind_label` (กลุ่มจังหวัด / จังหวัด) narrows a clash."""
        if not name or not name.strip():
            return Match(None, "form_header", "missing")
        ids = set(self._by_name.get(normalise_name(name), set()))
        if not ids and kind_label and "กลุ่ม" in kind_label:
            ids = set(self._by_name.get(normalise_name("กลุ่มจังหวัด" + name), set()))
        if len(ids) > 1 and kind_label:
            wanted = "cluster" if "กลุ่ม" in kind_label else "province"
            narrowed = {i for i in ids if self.roster.by_id[i].kind == wanted}
            ids = narrowed or ids
        return self._decide(ids, "form_header")

    def by_address(self, address: str | None) -> Match:
        if not address or "@" not in address:  # a value without `@` is never an address
            return Match(None, "address", "unknown")
        return self._decide(set(self._by_address.get(address.lower(), set())), "address")

    def by_text(self, text: str, method: str) -> Match:
        """Names found in a subject or body; only an unambiguous single sender counts."""
        haystack = normalise_name(text)
        found: set[str] = set()
        spans: list[tuple[int, int]] = []
        for key in self._scan_keys:
            start = haystack.find(key)
            while start != -1:
                end = start + len(key)
                if not any(s <= start and end <= e for s, e in spans):
                    spans.append((start, end))
                    found |= self._by_name[key]
                start = haystack.find(key, end)
        return self._decide(found, method)

    def _decide(self, ids: set[str], method: str) -> Match:
        if len(ids) == 1:
            return Match(next(iter(ids)), method)
        if not ids:
            return Match(None, method, "unknown")
        return Match(None, method, "ambiguous", tuple(sorted(ids)))

    def for_message(
        self, from_address: str | None, subject: str, body: str, thread: str | None = None
    ) -> Match:
        """Identity of a message as a whole (used when a form does not name its sender).
        `thread`: the sender a mail of ours that this one answers was about, if any."""
        tried: list[Match] = []
        for match in (
            self.by_address(from_address),
            Match(thread, "thread")
            if thread in self.roster.by_id
            else Match(None, "thread", "unknown"),
            self.by_text(subject, "subject"),
            self.by_text(body[:5000], "body"),
        ):
            if match.sender_id:
                return match
            tried.append(match)
        ambiguous = [m for m in tried if m.reason == "ambiguous"]
        if ambiguous:
            return Match(None, ambiguous[0].method, "ambiguous", ambiguous[0].candidates)
        return Match(None, "none", "unknown")
