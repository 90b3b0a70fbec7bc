"""Receipt numbers: one running counter per campaign and B.E. year.

Its own module because two sides draw from it, the pipeline's decisions (`intake.record`) and
the coordinator's hand decisions (`intake.review`), and the second must not load the first's
form reader (openpyxl) just to number an acceptance.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from intake.clock import as_utc
from intake.thai import be_year
from storage import queries


def new_receipt(session: Session, received_at: datetime, campaign: str) -> str:
    """A readable running number per campaign and B.E. year of receipt: `2567-0001`."""
    year = be_year(as_utc(received_at))
    number = queries.next_counter(session, f"receipt:{campaign}:{year}")
    return f"{year}-{number:04d}"
