"""Settings: the one reader of the environment and of `config/intake.toml`.

Order of precedence (highest first): keyword arguments, environment variables (`INTAKE_` prefix,
`__` between nested names), the TOML file (`--config PATH`, `INTAKE_CONFIG`, else
`config/intake.toml` in the current directory, else the built-in one), then the defaults below.
Built by `load_settings()`, never at import, and passed down: no module reads the environment on
its own.

The configuration folder in force (`config_dir`: roster, form description, mail templates) is,
in that order: the keyword argument or `INTAKE_CONFIG_DIR` (relative to the current directory),
`config_dir` in the TOML file (relative to the file's folder), else the TOML file's own folder:
`./config` when the current directory has `config/intake.toml` (a checkout, or `intake init`'s
default), else the built-in defaults packaged with intake (intake/packaged.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from intake.errors import ConfigError

DEFAULT_CONFIG = Path("config/intake.toml")
Security = Literal["ssl", "starttls", "none"]
# How IMAP and SMTP sign in: the password (a Gmail app password), or OAuth 2.0 (XOAUTH2) with the
# refresh token `intake auth gmail` stored in DATA_DIR (intake/oauth.py).
SignIn = Literal["password", "oauth2"]
OAUTH_TOKEN_FILE = "oauth2-token.json"  # in DATA_DIR, mode 0600; never a setting, never logged


class OAuthSettings(BaseModel):
    """The OAuth 2.0 client (a Google Cloud "Desktop app" client) for `auth = "oauth2"`.

    The endpoints are Google's; a test (or another provider) points them elsewhere. The refresh
    token is not a setting: it is written by `intake auth gmail` to DATA_DIR, never to the TOML.
    """

    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"
    scope: str = "https://mail.google.com/"  # the only scope Gmail's IMAP and SMTP accept


@dataclass(frozen=True)
class OAuthBinding:
    """What an OAuth login needs beyond the IMAP or SMTP settings: the client and the token file."""

    client: OAuthSettings
    token_path: Path


class _SignInSettings(BaseModel):
    """IMAP and SMTP settings carry their OAuth binding (set by `Settings`), so `Mailbox` and
    `SmtpTransport` keep taking only their own settings whichever way they sign in."""

    _oauth: OAuthBinding | None = PrivateAttr(default=None)

    def bind_oauth(self, binding: OAuthBinding | None) -> None:
        self._oauth = binding

    @property
    def oauth(self) -> OAuthBinding | None:
        return self._oauth


class ImapSettings(_SignInSettings):
    host: str = "imap.gmail.com"
    port: int | None = Field(default=None, ge=1, le=65535)  # by security: 993 ssl, 143 otherwise
    username: str = ""
    password: SecretStr = SecretStr("")
    auth: SignIn = "password"  # "oauth2": XOAUTH2 with the token of `intake auth gmail`
    security: Security = "ssl"
    folder: str = "INBOX"
    # How a handled message is filed on the server: a keyword (flag), a move to `done_folder`,
    # or a Gmail label (X-GM-LABELS). Never a delete.
    mark: Literal["keyword", "move", "gmail-label"] = "keyword"
    done_keyword: str = "$IntakeDone"
    done_folder: str = "intake/processed"
    timeout: float = 60.0  # seconds, on every socket operation
    batch_size: int = 50  # messages per UID FETCH, and per filing (STORE/MOVE) command
    sent_folder: str | None = None  # found by SPECIAL-USE \Sent when None

    def effective_port(self) -> int:
        if self.port:
            return self.port
        return 993 if self.security == "ssl" else 143


class SmtpSettings(_SignInSettings):
    host: str = "smtp.gmail.com"
    port: int | None = Field(default=None, ge=1, le=65535)  # 465 ssl, 587 starttls, 25 none
    username: str = ""
    password: SecretStr = SecretStr("")
    auth: SignIn = "password"  # "oauth2": AUTH XOAUTH2 with the token of `intake auth gmail`
    security: Security = "ssl"
    from_address: str = "Jpp.moi9999@gmail.com"
    from_name: str = "ศูนย์ประสานข้อมูลการยกระดับเมือง กระทรวงมหาดไทย"
    timeout: float = 60.0

    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"ssl": 465, "starttls": 587, "none": 25}[self.security]


class RepliesSettings(BaseModel):
    enabled: bool = True
    dry_run: bool = False  # the outbox fills, nothing is sent
    per_recipient_daily_cap: int = 5
    message_id_domain: str = "intake.moi.local"
    # Spoofing (intake/auth.py): the topmost Authentication-Results by this server is trusted; a
    # roster address failing DMARC gets no reply (HELD, review `dmarc_fail`). No such header at
    # all (a local test server) means "unknown" and is not held.
    authserv_id: str = "mx.google.com"
    require_dmarc: bool = True


class RemindersSettings(BaseModel):
    """When reminders go out (intake/reminders.py): whole days before the deadline's date, at a
    Bangkok time of day; optionally overdue notices on days after it. Each goes once per sender."""

    enabled: bool = True
    days_before: list[int] = Field(default_factory=lambda: [3, 1])
    at: time = time(9, 0)  # Asia/Bangkok
    overdue_days_after: list[int] = Field(default_factory=list)  # e.g. [1]; empty: no notice


class WebSettings(BaseModel):
    """`intake web`: loopback by default; any other address needs `token` (refused without)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    token: SecretStr = SecretStr("")  # bearer header, login form, or basic auth password
    public_url: str = ""  # the address people use (for the template link and its QR code)


class WorkerSettings(BaseModel):
    """`intake run`: the scheduler, IDLE, the lease and health. Durations are in seconds."""

    poll_interval: float = 120.0  # the safety-net poll; IDLE wakes the worker sooner
    idle: bool = True  # use IMAP IDLE when the server offers it
    cycle_timeout: float = 900.0  # a cycle running longer is abandoned and logged
    misfire_grace: float = 300.0  # a job that could not start on time still runs this late
    lease_ttl: float = 90.0  # a worker that stops renewing loses the lease after this
    lease_renew: float = 30.0  # how often the active worker renews it
    lease_wait: float = 60.0  # how long `intake poll --once` waits for another worker's lease
    standby_check: float = 10.0  # how often a standby worker tries to take over
    shutdown_grace: float = 20.0  # on SIGTERM, how long the current cycle may take to finish
    alert_after: float = 900.0  # no successful poll for this long: unhealthy, alert
    coordinator_address: str | None = None  # daily summary and alerts go here when set
    summary_time: str = "08:00"  # daily summary, local time (settings.timezone)
    reminders_interval: float = 900.0  # how often due reminders are looked for
    log_format: Literal["kv", "json"] = "kv"  # one line per event: key=value or JSON
    # last-resort ceiling on the process's heap for poll, import, reprocess and run (0: none):
    # past it the message at hand fails with MemoryError instead of the worker being OOM-killed
    memory_limit_mb: int = 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTAKE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # default: SQLite under data_dir; may carry a password, so it is kept out of repr()
    database_url: str | None = Field(default=None, repr=False)
    data_dir: Path = Path("./var")
    # roster (senders/), form description (form.toml), mail templates (templates/)
    config_dir: Path = Field(default_factory=lambda: default_config_file().parent)
    imap: ImapSettings = Field(default_factory=ImapSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    replies: RepliesSettings = Field(default_factory=RepliesSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    deadline: datetime = datetime.fromisoformat("2024-01-22T23:59:59+07:00")
    now: datetime | None = None  # the instant taken as "now" (demos, tests of deadline logic)
    timezone: str = "Asia/Bangkok"
    campaign: str = "city-upgrading-2567"
    include_bangkok: bool = False  # Bangkok is in the reference data but was not addressed
    reminders: RemindersSettings = Field(default_factory=RemindersSettings)

    # Where the TOML file comes from; set by load_settings(), not by users.
    toml_file: Path | None = Field(default=None, exclude=True)

    @field_validator("deadline", "now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2024-01-22T23:59:59+07:00")
        return value

    @model_validator(mode="after")
    def _bind_oauth(self) -> Settings:
        """Give IMAP and SMTP the OAuth client and the token file's place (see _SignInSettings)."""
        binding = OAuthBinding(self.oauth, self.oauth_token_path)
        self.imap.bind_oauth(binding)
        self.smtp.bind_oauth(binding)
        return self

    @property
    def oauth_token_path(self) -> Path:
        return self.data_dir / OAUTH_TOKEN_FILE

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _TOML_PATH_FOR_BUILD.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None and toml_path.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'intake.db').resolve()}"

    def describe(self) -> dict[str, Any]:
        """Settings for display: secrets masked by SecretStr, database URL password removed."""
        data = self.model_dump(mode="json")
        data["database_url"] = redact_url(self.effective_database_url)
        from intake.packaged import is_default_config

        shown = str(self.config_dir.absolute())
        data["config_dir"] = (
            f"{shown} (built-in defaults)" if is_default_config(self.config_dir) else shown
        )
        return data


_TOML_PATH_FOR_BUILD: dict[str, Path | None] = {"path": None}


def default_config_file() -> Path:
    """`config/intake.toml` when the current directory has one (a checkout, or the folder
    `intake init` writes by default), else the built-in one packaged with intake."""
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    from intake.packaged import default_config_dir

    return default_config_dir() / "intake.toml"


def load_settings(
    config: Path | str | None = None, *, require_file: bool = False, **overrides: Any
) -> Settings:
    """Build the settings once, at the edge (CLI, scheduler, tests).

    A file named by `INTAKE_CONFIG` must exist (ConfigError naming the variable), and so must
    `config` when `require_file` is set (the CLI's `--config`): a mistyped name must not quietly
    run the defaults. Code and tests may name an absent `config` to mean "no file at all"."""
    env_config = os.environ.get("INTAKE_CONFIG")
    if config:
        path, named, strict = Path(config), "--config", require_file
    elif env_config:
        path, named, strict = Path(env_config), "INTAKE_CONFIG", True
    else:
        path, named, strict = default_config_file(), "", False
    if strict and not path.is_file():
        what = "is a folder, not a settings file" if path.is_dir() else "no such settings file"
        raise ConfigError(f"{named}: {what}: {path}")
    _TOML_PATH_FOR_BUILD["path"] = path
    try:
        settings = Settings(**overrides)
    finally:
        _TOML_PATH_FOR_BUILD["path"] = None
    settings.toml_file = path if path.is_file() else None
    _place_config_dir(settings, path if path.is_file() else None, overrides)
    return settings


def _place_config_dir(settings: Settings, toml: Path | None, overrides: dict[str, Any]) -> None:
    """Resolve `config_dir` (see the module's docstring); a folder named by the environment or
    the file must exist, else ConfigError naming where it was set."""
    if "config_dir" in overrides:
        return
    if os.environ.get("INTAKE_CONFIG_DIR"):
        where = "INTAKE_CONFIG_DIR"
    elif toml is not None and _toml_sets(toml, "config_dir"):
        where = f"config_dir in {toml}"
        if not settings.config_dir.is_absolute():  # travels with the file (`intake init`)
            settings.config_dir = toml.parent / settings.config_dir
    elif toml is not None:
        settings.config_dir = toml.parent  # roster, form and templates beside the file
        return
    else:
        return
    if not settings.config_dir.is_dir():
        raise ConfigError(f"{where}: no such configuration folder: {settings.config_dir}")


def _toml_sets(path: Path, key: str) -> bool:
    import tomllib

    with path.open("rb") as fh:
        return key in tomllib.load(fh)


def os_user() -> str:
    """Who runs this process (the default actor in the audit trail when `--by` is not given)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (some containers): still an actor
        return "unknown"


_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|sslpassword)=)[^&]*")


def _clear_url(url: str) -> bool:
    """True when the URL reads one way only: no "@" after the credentials' separator (in the
    host, the database or the query), so SQLAlchemy's parse is the right one."""
    from storage.session import parse_url

    parsed = parse_url(url)
    after = (parsed.host or "", parsed.database or "", str(dict(parsed.query)))
    return not any("@" in part for part in after)


def _split_credentials(url: str) -> tuple[str, str | None, str] | None:
    """("scheme://user", password or None, what follows the "@"), the credentials taken up to
    the LAST "@": a password may hold "@", ":", "/", "%", "#" unencoded, and hiding a little too
    much (an "@" in a database name) is better than showing part of a password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, hostpart = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{user}", (password if colon else None), hostpart


def redact_url(url: str) -> str:
    """A database URL with its whole password hidden, whatever characters it holds, before it
    reaches a log or a screen (`intake config`, errors)."""
    from storage.session import parse_url

    try:
        if _clear_url(url):
            return _QUERY_SECRET.sub(r"\1***", parse_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - not parsable by SQLAlchemy: the split below still hides it
        pass
    parts = _split_credentials(url)
    if parts is None:
        return "<unparsable database URL>"
    prefix, password, rest = parts
    return _QUERY_SECRET.sub(r"\1***", f"{prefix}{':***' if password is not None else ''}@{rest}")


def database_passwords(url: str) -> list[str]:
    """The password of a database URL in every form it may be written in (for log redaction);
    never a fragment of it (SQLAlchemy's reading of `u:p@s/s@host` would give "p")."""
    from urllib.parse import unquote

    from storage.session import parse_url

    found: set[str] = set()
    try:
        if _clear_url(url) and parse_url(url).password:
            found.add(str(parse_url(url).password))
    except Exception:  # noqa: BLE001 - an unparsable URL: the split below is all there is
        pass
    parts = _split_credentials(url)
    if parts is not None and parts[1]:
        found |= {parts[1], unquote(parts[1])}
    return sorted(found)


# --------------------------------------------------------------------------- errors, for people

_SECRET_FIELDS = {"password", "token", "database_url"}
_EXPECTED = {
    "datetime": "expected an ISO 8601 date-time with offset, e.g. 2024-01-22T23:59:59+07:00",
    "int": "expected a whole number",
    "float": "expected a number",
    "bool": "expected true or false",
    "time": "expected a time of day, e.g. 09:00",
    "list": "expected a JSON list, e.g. [3, 1]",
}


def check_config_file(config: Path | str | None = None) -> None:
    """A settings file named by `--config` or INTAKE_CONFIG must exist: a typo would otherwise run
    the built-in defaults (Gmail, a SQLite file in ./var) without a word. Only the implicit
    `config/intake.toml` may be absent."""
    from intake.errors import ConfigError

    if config:
        named, path = "--config", Path(config)
    elif os.environ.get("INTAKE_CONFIG"):
        named, path = "INTAKE_CONFIG", Path(os.environ["INTAKE_CONFIG"])
    else:
        return
    if not path.exists():
        raise ConfigError(f"{named}: no such settings file: {path}")
    if not path.is_file():
        raise ConfigError(f"{named}: not a file: {path}")


def env_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """The environment variable of a setting: ("imap", "port") -> INTAKE_IMAP__PORT."""
    return "INTAKE_" + "__".join(str(part).upper() for part in loc if isinstance(part, str))


def settings_error_text(exc: BaseException, config: Path | str | None = None) -> str:
    """One line for a person from whatever building the settings raised: each bad setting named
    by its environment variable (and its TOML key when the value came from the file), what was
    expected and what was given (never a secret's value). pydantic's own text spans several
    lines, ends in a link and names only the field path."""
    import tomllib

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from intake.errors import ConfigError

    if isinstance(exc, ValidationError):
        return "; ".join(_one_error(error, config) for error in exc.errors())
    if isinstance(exc, SettingsError):
        return _complex_env_error(str(exc))
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"settings file {_toml_path(config)}: not valid TOML: {exc}"
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {text}"


def _toml_path(config: Path | str | None) -> Path:
    return Path(config) if config else Path(os.environ.get("INTAKE_CONFIG", DEFAULT_CONFIG))


def _one_error(error: Any, config: Path | str | None) -> str:
    loc = tuple(error.get("loc", ()))
    name = env_name(loc)
    key = ".".join(str(part) for part in loc if isinstance(part, str))
    where = name if name.upper() in {k.upper() for k in os.environ} else (
        f"{key} in {_toml_path(config)} (or {name})"
    )
    kind = str(error.get("type", ""))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    for prefix, expected in _EXPECTED.items():
        if kind.startswith(prefix + "_"):
            message = expected
            break
    else:
        message = message.replace("Input should be", "expected")
    if key.endswith("port") and kind in {"greater_than_equal", "less_than_equal"}:
        message = "expected a port number from 1 to 65535"
    if any(secret in key for secret in _SECRET_FIELDS) or "input" not in error:
        return f"{where}: {message}"
    given = error["input"]
    shown = repr(given) if isinstance(given, str | int | float | bool) else type(given).__name__
    return f"{where}: {message}, got {shown[:80]}"


def _complex_env_error(text: str) -> str:
    """pydantic-settings reads lists and whole sections from the environment as JSON, and says
    only which top-level field failed: the variable is found again here."""
    import json

    match = re.search(r'field "([^"]+)"', text)
    field_name = match.group(1) if match else ""
    prefix = env_name((field_name,)).upper()
    for key, value in sorted(os.environ.items()):
        upper = key.upper()
        if upper != prefix and not upper.startswith(prefix + "__"):
            continue
        try:
            json.loads(value)
        except ValueError:
            if upper == prefix or _is_list_field(upper.removeprefix(prefix + "__"), field_name):
                if upper != prefix:
                    return f"{upper}: {_EXPECTED['list']}"
                return f"{upper}: expected a JSON object; one value is set as {upper}__NAME"
    return f"{prefix}: {text}"


def _is_list_field(sub: str, field_name: str) -> bool:
    section = Settings.model_fields.get(field_name)
    model = getattr(section, "annotation", None)
    fields = getattr(model, "model_fields", {})
    info = fields.get(sub.lower())
    return info is not None and "list" in str(info.annotation)
