"""Crash points for the exactly-once tests: `INTAKE_FAULT=<point>` kills the process there.

The tests kill a real `intake poll --once` at the worst moments (after archiving, after the
decision commit, between the outbox's SENDING commit and SMTP, between SMTP's 250 and SENT) and
then run it again. Unset in production, where `crash_point()` is a dictionary look-up and nothing
more. This is the one place besides `settings.py` that reads the environment, on purpose: a fault
must be injectable without a settings object at hand.
"""

from __future__ import annotations

import os

POINTS = frozenset({"after_archive", "after_decision", "before_smtp", "after_smtp"})


class InjectedFault(RuntimeError):
    """Raised by `fail_point`: a decision that fails for one chosen message."""


def crash_point(name: str) -> None:
    if os.environ.get("INTAKE_FAULT") == name:
        os._exit(137)  # like SIGKILL: no cleanup, no flush, no commit


def fail_point(name: str, key: str | None) -> None:
    """`INTAKE_FAULT=<name>:<key>` makes this raise for the message whose key (its Message-ID)
    matches: a poison message that fails inside the decision, for the tests that prove it is
    retried a bounded number of times and stops nothing else."""
    fault = os.environ.get("INTAKE_FAULT")
    if fault is not None and key is not None and fault == f"{name}:{key}":
        raise InjectedFault(f"{name} for {key}")
