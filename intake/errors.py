"""One error family, so the CLI can map failures to exit codes and the worker to retry-or-record."""

from __future__ import annotations


class IntakeError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(IntakeError):
    """A setting or a config file is wrong; fix it and run again."""


class MailboxUnavailable(IntakeError):
    """The mailbox could not be reached or refused us; try again later (never a message's fault)."""

    cycle_report: object | None = None  # what the poll did before it failed (pipeline.poll_once)


class MailboxLoginFailed(MailboxUnavailable):
    """The server rejected the credentials: waiting will not help, a person must act."""


class SmtpUnavailable(IntakeError):
    """The SMTP server could not be reached or answered with a temporary failure."""
