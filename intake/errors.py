"""One error family, so the CLI can map failures to exit codes and the worker to retry-or-record."""

from __future__ import annotations

from datetime import datetime


class IntakeError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(IntakeError):
    """A setting or a config file is wrong; fix it and run again."""


class LeaseBusy(IntakeError):
    """Another worker holds the lease (and kept it for as long as we were willing to wait).
    Here, not in intake.cycle, so the CLI maps it to its exit code without loading the pipeline."""

    def __init__(self, holder: str, expires_at: datetime | None) -> None:
        self.holder, self.expires_at = holder, expires_at
        until = f" until {expires_at:%Y-%m-%d %H:%M:%S} UTC" if expires_at else ""
        super().__init__(f"another worker ({holder}) holds the lease{until}")


class MailboxUnavailable(IntakeError):
    """The mailbox could not be reached or refused us; try again later (never a message's fault)."""

    cycle_report: object | None = None  # what the poll did before it failed (pipeline.poll_once)


class MailboxLoginFailed(MailboxUnavailable):
    """The server rejected the credentials: waiting will not help, a person must act."""


class SmtpUnavailable(IntakeError):
    """The SMTP server could not be reached or answered with a temporary failure."""


class OAuthSignInFailed(MailboxLoginFailed):
    """OAuth 2.0 sign-in cannot work as configured (no token yet, client refused): a person acts."""


class OAuthRevoked(OAuthSignInFailed):
    """The token endpoint refused the refresh token (`invalid_grant`: revoked, expired, or reset
    by a password change). Only a new consent (`intake auth gmail`) helps; `revoked_at` is when
    it was first refused (one alert per refusal)."""

    def __init__(self, message: str, revoked_at: str) -> None:
        super().__init__(message)
        self.revoked_at = revoked_at
