"""Gmail sign-in with OAuth 2.0 (XOAUTH2), against real servers.

A local OAuth server in Google's shape (tests/servers.py OAuthServer: token endpoint with PKCE
and refresh grants, RFC 7662 introspection) stands in for Google; Dovecot validates the bearer
tokens with its `oauth2` passdb at that introspection endpoint, and an aiosmtpd submission
server does the same for AUTH XOAUTH2. Nothing here talks to Google or opens a browser.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from intake import oauth
from intake.errors import MailboxLoginFailed, OAuthRevoked, OAuthSignInFailed
from intake.idle import IdleWatcher
from intake.mailbox import Mailbox
from intake.outbox import SmtpTransport, _Unreachable, send_outbox
from intake.settings import OAuthBinding, OAuthSettings, Settings, load_settings
from storage.models import Outbox, OutboxState
from storage.session import make_engine, migrate, session_factory, session_scope
from tests.intake_env import REPO, IntakeRunner, settings_env
from tests.servers import DovecotServer, OAuthServer, ServerUnavailable, SmtpServer
from tests.worker_env import WorkerProcess, province_mail

pytestmark = [
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated"),
]


@pytest.fixture(scope="module")
def _oauth_server() -> Iterator[OAuthServer]:
    server = OAuthServer().start()
    yield server
    server.stop()


@pytest.fixture
def google(_oauth_server: OAuthServer) -> OAuthServer:
    """The local stand-in for Google's OAuth endpoints, with hour-long access tokens."""
    _oauth_server.expires_in = 3600
    return _oauth_server


@pytest.fixture(scope="module")
def oauth_dovecot(_oauth_server: OAuthServer) -> Iterator[DovecotServer]:
    """Dovecot with an oauth2 passdb asking the OAuth server's introspection endpoint."""
    server = DovecotServer(oauth2_introspection_url=_oauth_server.introspection_url)
    try:
        server.start()
    except ServerUnavailable as exc:
        pytest.fail(f"Dovecot could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oauth_smtp(_oauth_server: OAuthServer) -> Iterator[SmtpServer]:
    """A submission server that takes mail only after AUTH XOAUTH2 (checked by introspection)."""
    server = SmtpServer(oauth2_introspection_url=_oauth_server.introspection_url).start()
    yield server
    server.stop()


def _client(google: OAuthServer) -> OAuthSettings:
    return OAuthSettings(
        client_id=google.client_id,
        client_secret=SecretStr(google.client_secret),
        token_uri=google.token_uri,
        auth_uri=google.auth_uri,
    )


def _env(google: OAuthServer) -> dict[str, str]:
    return {
        "INTAKE_OAUTH__CLIENT_ID": google.client_id,
        "INTAKE_OAUTH__CLIENT_SECRET": google.client_secret,
        "INTAKE_OAUTH__TOKEN_URI": google.token_uri,
        "INTAKE_OAUTH__AUTH_URI": google.auth_uri,
    }


def _binding(tmp_path: Path, google: OAuthServer) -> OAuthBinding:
    binding = Settings(data_dir=tmp_path / "var", oauth=_client(google)).imap.oauth
    assert binding is not None
    return binding


# --- the token file and the refresh ---------------------------------------------------------


def test_the_refresh_token_is_kept_0600_from_its_first_byte_and_damage_is_named(tmp_path):
    path = tmp_path / "var" / "oauth2-token.json"
    old = os.umask(0)  # the most permissive umask: the file must still be ours alone
    try:
        oauth.store_consent(
            path, "1//secret-refresh", "box@example.test", "https://mail.google.com/"
        )
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["refresh_token"] == "1//secret-refresh"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    path.chmod(0o644)  # someone loosened it: reading puts it back
    assert oauth.read_token(path).refresh_token == "1//secret-refresh"  # type: ignore[union-attr]
    assert path.stat().st_mode & 0o777 == 0o600
    settings = Settings(
        data_dir=tmp_path / "var", oauth=OAuthSettings(client_secret=SecretStr("client-secret-x"))
    )
    assert "1//secret-refresh" not in json.dumps(settings.describe(), default=str)
    assert "client-secret-x" not in json.dumps(settings.describe(), default=str)
    path.write_text('{"refresh_token": "1//half')
    with pytest.raises(OAuthSignInFailed) as damaged:
        oauth.read_token(path)
    assert "damaged" in str(damaged.value) and "1//half" not in str(damaged.value)
    assert "intake auth gmail" in str(damaged.value)


def test_access_tokens_are_reused_while_valid_and_refreshed_before_expiry(tmp_path, google):
    binding = _binding(tmp_path, google)
    oauth.store_consent(binding.token_path, google.issue_refresh_token("a@example.test"), "", "")
    before = google.refreshes
    first = oauth.access_token(binding, timeout=10)
    assert first.fresh and google.refreshes == before + 1
    assert google.requests[-1]["grant_type"] == "refresh_token"
    again = oauth.access_token(binding, timeout=10)
    assert again == oauth.AccessToken(first.token, fresh=False) and google.refreshes == before + 1
    # four minutes left (less than REFRESH_MARGIN): replaced before it can die mid-login
    stored = oauth.read_token(binding.token_path)
    assert stored is not None
    stored.expiry = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    oauth.write_token(binding.token_path, stored)
    renewed = oauth.access_token(binding, timeout=10)
    assert renewed.fresh and renewed.token != first.token and google.refreshes == before + 2
    assert google.introspect(renewed.token)["active"] is True
    saved = oauth.read_token(binding.token_path)
    assert saved is not None and saved.access_token == renewed.token
    assert datetime.fromisoformat(saved.expiry or "") > datetime.now(UTC) + timedelta(minutes=55)


def test_a_refused_refresh_token_is_recorded_and_not_asked_again(tmp_path, google):
    binding = _binding(tmp_path, google)
    refresh = google.issue_refresh_token("b@example.test")
    oauth.store_consent(binding.token_path, refresh, "", "")
    google.revoke(refresh)
    before = google.refreshes
    with pytest.raises(OAuthRevoked) as refused:
        oauth.access_token(binding, timeout=10)
    assert google.refreshes == before + 1
    assert "invalid_grant" in str(refused.value) and "intake auth gmail" in str(refused.value)
    assert refresh not in str(refused.value)
    with pytest.raises(OAuthRevoked) as again:
        oauth.access_token(binding, timeout=10, force=True)
    assert google.refreshes == before + 1  # the endpoint is not hammered with a dead token
    assert again.value.revoked_at == refused.value.revoked_at  # one refusal: one alert key
    assert "refused the refresh token" in (oauth.token_problem(binding.token_path) or "")
    # a new consent replaces it
    oauth.store_consent(binding.token_path, google.issue_refresh_token("b@example.test"), "", "")
    assert oauth.token_problem(binding.token_path) is None
    assert oauth.access_token(binding, timeout=10).fresh


def test_a_wrong_client_secret_is_a_sign_in_failure_naming_the_settings(tmp_path, google):
    settings = Settings(
        data_dir=tmp_path / "var",
        oauth=_client(google).model_copy(update={"client_secret": SecretStr("not-it")}),
    )
    binding = settings.imap.oauth
    assert binding is not None
    oauth.store_consent(binding.token_path, google.issue_refresh_token("c@example.test"), "", "")
    with pytest.raises(OAuthSignInFailed) as refused:
        oauth.access_token(binding, timeout=10)
    assert not isinstance(refused.value, OAuthRevoked)
    assert "invalid_client" in str(refused.value)
    assert "INTAKE_OAUTH__CLIENT_SECRET" in str(refused.value)
    assert oauth.token_problem(binding.token_path) is None  # the token itself is still good


# --- IMAP: Dovecot with an oauth2 passdb ----------------------------------------------------


def test_imap_signs_in_with_xoauth2_at_dovecot_and_idle_uses_it_too(
    tmp_path, google, oauth_dovecot
):
    user = oauth_dovecot.user()
    settings = Settings(
        data_dir=tmp_path / "var",
        oauth=_client(google),
        imap=user.settings(auth="oauth2", password=""),  # no password at all
    )
    oauth.store_consent(settings.oauth_token_path, google.issue_refresh_token(user.name), "", "")
    uid = user.append(province_mail(0))
    with Mailbox(settings.imap) as box:
        assert box.uids_after(0) == [uid]
    assert f"Login: user=<{user.name}>, method=XOAUTH2" in oauth_dovecot.log()
    # the access token on file no longer passes (Google ended it early): one fresh try
    google.expire_access_tokens()
    before = google.refreshes
    with Mailbox(settings.imap) as box:
        assert box.state().exists == 1
    assert google.refreshes == before + 1
    # the IDLE connection signs in the same way
    stop, woken = threading.Event(), threading.Event()
    watcher = IdleWatcher(settings.imap, lambda reason: woken.set(), stop, chunk=1.0)
    watcher.start()
    try:
        assert watcher.listening.wait(15), oauth_dovecot.log()[-2000:]
        user.append(province_mail(1))
        assert woken.wait(15)
    finally:
        stop.set()
        watcher.join(15)


def test_imap_refuses_a_token_of_another_account_as_a_login_failure(
    tmp_path, google, oauth_dovecot
):
    user, other = oauth_dovecot.user(), oauth_dovecot.user()
    settings = Settings(
        data_dir=tmp_path / "var", oauth=_client(google), imap=user.settings(auth="oauth2")
    )
    oauth.store_consent(settings.oauth_token_path, google.issue_refresh_token(other.name), "", "")
    with pytest.raises(MailboxLoginFailed) as refused:
        Mailbox(settings.imap, connect_attempts=1).open()
    assert not isinstance(refused.value, OAuthSignInFailed)
    text = str(refused.value)
    assert "refused the OAuth 2.0 login" in text and user.name in text
    assert "Bearer" not in text and "ya29" not in text  # the token is never shown


# --- SMTP: AUTH XOAUTH2 ---------------------------------------------------------------------


def test_smtp_sends_after_auth_xoauth2_and_a_revoked_token_keeps_the_mail_queued(
    tmp_path, google, oauth_smtp, database_url
):
    from intake.notices import queue_notice

    account = "intake@example.test"
    toml = tmp_path / "intake.toml"
    toml.write_text("")
    settings = load_settings(
        toml,
        database_url=database_url,
        data_dir=tmp_path / "var",
        oauth=_client(google),
        smtp=oauth_smtp.smtp_settings(auth="oauth2", username=account),
        worker={"coordinator_address": "coordinator@moi.example"},
    )
    oauth_smtp.clear()
    refresh = google.issue_refresh_token(account)
    oauth.store_consent(settings.oauth_token_path, refresh, account, "")
    factory = session_factory(make_engine(database_url))
    now = datetime.now(UTC)
    for n in (1, 2):
        assert queue_notice(
            factory, settings, kind="alert", subject=f"t{n}", text="ทดสอบ", dedupe_key=f"k{n}",
            now=now,
        )  # fmt: skip
    report = send_outbox(factory, settings.smtp, settings.replies, lambda: now)
    assert report.sent == 1 + 1 and oauth_smtp.auth_logins == [account]
    assert [m.rcpt_tos for m in oauth_smtp.wait_for(2)] == [["coordinator@moi.example"]] * 2
    # a cached token Google no longer takes is replaced by a fresh one, on the same connection
    google.expire_access_tokens()
    transport = SmtpTransport(settings.smtp)
    assert transport.send(account, "x@example.test", b"Subject: x\r\n\r\nx\r\n") == "250 accepted"
    transport.close()
    assert oauth_smtp.auth_refused == [account] and oauth_smtp.auth_logins == [account] * 2
    # revoked: nothing is sent, the reply waits in the queue with no attempt counted
    google.revoke(refresh)
    queue_notice(
        factory, settings, kind="alert", subject="t3", text="ทดสอบ", dedupe_key="k3", now=now
    )
    report = send_outbox(factory, settings.smtp, settings.replies, lambda: now)
    assert report.sent == 0 and report.deferred == 1
    assert "invalid_grant" in report.errors[0] and "intake auth gmail" in report.errors[0]
    with session_scope(factory) as session:
        row = session.query(Outbox).filter_by(subject="t3").one()
        assert (row.state, row.attempts) == (OutboxState.QUEUED, 0)
    with pytest.raises(_Unreachable, match="refused the refresh token"):
        SmtpTransport(settings.smtp).send(account, "x@example.test", b"Subject: x\r\n\r\nx\r\n")


# --- the whole story through the command ----------------------------------------------------


def test_poll_signs_in_with_oauth_and_a_revoked_token_is_loud_everywhere(
    tmp_path, google, oauth_dovecot, smtp_server, database_url
):
    """poll --once works with XOAUTH2; after the owner revokes the app: exit 3 with one line,
    `intake status` unhealthy with the reason, one alert mail to the coordinator (by SMTP with
    its own password, the channel that still works), and no second alert or refresh later."""
    user = oauth_dovecot.user()
    coordinator = "coordinator@moi.example"
    env = settings_env(tmp_path, database_url, user.settings(), smtp_server.smtp_settings())
    env.update(_env(google))
    env.update(
        INTAKE_IMAP__AUTH="oauth2",
        INTAKE_IMAP__PASSWORD="",
        INTAKE_WORKER__COORDINATOR_ADDRESS=coordinator,
    )
    intake = IntakeRunner(env)
    intake("db", "upgrade")
    refresh = google.issue_refresh_token(user.name)
    oauth.store_consent(intake.settings().oauth_token_path, refresh, user.name, "")
    user.append(province_mail(2))
    done = intake("poll", "--once")
    assert "fetched 1 (new 1)" in done.stdout
    assert f"Login: user=<{user.name}>, method=XOAUTH2" in oauth_dovecot.log()
    assert "HEALTHY" in intake("status").stdout
    smtp_server.clear()

    google.revoke(refresh)  # the account's owner removed intake's access
    user.append(province_mail(3))
    refused = intake("poll", "--once", check=False)
    assert refused.returncode == 3, refused.stderr
    said = " ".join(refused.stderr.split())
    assert refused.stderr.count("error:") == 1 and "Traceback" not in refused.stderr
    assert "invalid_grant" in said and "intake auth gmail" in said
    assert refresh not in refused.stderr + refused.stdout
    status = intake("status", check=False)
    assert status.returncode == 5 and "UNHEALTHY" in status.stdout
    assert "refused the refresh token" in status.stdout
    from_file = intake("status", "--file", check=False)
    assert from_file.returncode == 5 and "refused the refresh token" in from_file.stdout
    alert = smtp_server.wait_for(1)[0]
    assert alert.rcpt_tos == [coordinator]
    assert alert.message["X-Intake-Kind"] == "alert"
    assert "Gmail" in str(alert.message["Subject"])
    body = alert.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "intake auth gmail" in body and user.name in body and "ไม่สูญหาย" in body

    refreshes = google.refreshes
    again = intake("poll", "--once", check=False)
    assert again.returncode == 3 and google.refreshes == refreshes
    assert len(smtp_server.messages) == 1  # one alert per refusal

    # a new consent: everything works again, the mail that waited is taken in
    oauth.store_consent(
        intake.settings().oauth_token_path, google.issue_refresh_token(user.name), user.name, ""
    )
    assert "fetched 1 (new 1)" in intake("poll", "--once").stdout
    assert "HEALTHY" in intake("status").stdout


def test_the_worker_with_a_revoked_token_alerts_once_retries_quietly_and_logs_no_token(
    tmp_path, google, oauth_dovecot, smtp_server
):
    """`intake run`: the poll and the IDLE connection both meet the refusal; the endpoint is
    asked once, the coordinator mailed once, the cycle keeps failing loudly, no token in the log."""
    user = oauth_dovecot.user()
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    env = settings_env(tmp_path, url, user.settings(), smtp_server.smtp_settings()) | _env(google)
    refresh = google.issue_refresh_token(user.name)
    binding = _binding(tmp_path, google)
    oauth.store_consent(binding.token_path, refresh, user.name, "")
    access = oauth.access_token(binding, timeout=10).token  # a cached access token, too
    google.revoke(refresh)
    refreshes = google.refreshes
    worker = WorkerProcess.start(
        env, tmp_path / "worker.log",
        INTAKE_IMAP__AUTH="oauth2", INTAKE_IMAP__PASSWORD="",
        INTAKE_WORKER__COORDINATOR_ADDRESS="coordinator@moi.example",
    )  # fmt: skip
    try:
        [alert] = smtp_server.wait_for(1, timeout=30)
        worker.wait_for_log(r"event=cycle\.failed", count=2, timeout=30)  # retried, still loud
        worker.wait_for_log(r"event=idle\.disconnected")
    finally:
        assert worker.terminate() == 0
    assert alert.rcpt_tos == ["coordinator@moi.example"] and len(smtp_server.messages) == 1
    assert google.refreshes == refreshes + 1
    assert worker.log.count("event=oauth.revoked") == 1
    assert "intake auth gmail" in worker.log
    assert refresh not in worker.log and access not in worker.log
    assert google.client_secret not in worker.log


def test_oauth2_chosen_without_consent_poll_exits_3_and_status_says_what_to_run(
    tmp_path, google, oauth_dovecot
):
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    user = oauth_dovecot.user()
    env = settings_env(tmp_path, url, user.settings()) | _env(google)
    intake = IntakeRunner(env | {"INTAKE_IMAP__AUTH": "oauth2", "INTAKE_IMAP__PASSWORD": ""})
    intake("db", "upgrade")
    poll = intake("poll", "--once", check=False)
    assert poll.returncode == 3 and poll.stderr.count("error:") == 1
    assert "run `intake auth gmail` once" in " ".join(poll.stderr.split())
    status = intake("status", check=False)
    assert status.returncode == 5 and "run `intake auth gmail` once" in status.stdout


# --- `intake auth gmail`: the consent ---------------------------------------------------------


def _consent_env(tmp_path: Path, google: OAuthServer, **extra: str) -> dict[str, str]:
    (tmp_path / "intake.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(_env(google))
    env.update(
        INTAKE_CONFIG=str(tmp_path / "intake.toml"),
        INTAKE_DATA_DIR=str(tmp_path / "var"),
        INTAKE_IMAP__USERNAME="box@example.test",
        OAUTHLIB_INSECURE_TRANSPORT="1",  # the local token endpoint is http; Google's is https
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


CONSENT_OPTIONS = ("--timeout", "60", "--bind", "127.0.0.1")


def _start_consent(
    env: dict[str, str],
) -> tuple[subprocess.Popen[str], dict[str, str], queue.Queue[str]]:
    """Run `intake auth gmail --no-browser`: the process, the query of the address it asks to
    open, and the lines of its standard output (read by a thread, so none is lost or waited
    for twice)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "intake", "auth", "gmail", "--no-browser", *CONSENT_OPTIONS],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"no consent address printed: {seen}") from None
        if not line:
            raise AssertionError(f"no consent address printed: {seen} {proc.stderr.read()}")  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith(env["INTAKE_OAUTH__AUTH_URI"]):
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(line.strip()).query))
            return proc, query, lines


def _drain(lines: queue.Queue[str]) -> list[str]:
    """The rest of the output, up to its end."""
    out = []
    while line := lines.get(timeout=30):
        out.append(line)
    return out


def _redirect(query: dict[str, str], **answer: str) -> str:
    """What the browser does after Google's page: GET the loopback redirect address."""
    url = f"{query['redirect_uri']}?{urllib.parse.urlencode({'state': query['state'], **answer})}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
        return response.read().decode()


def test_intake_auth_gmail_runs_the_consent_and_stores_the_refresh_token_0600(tmp_path, google):
    env = _consent_env(tmp_path, google)
    proc, query, lines = _start_consent(env)
    assert query["client_id"] == google.client_id
    assert query["scope"] == "https://mail.google.com/"
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["login_hint"] == "box@example.test"
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"].startswith("http://localhost:")
    code = google.authorize("box@example.test", query["code_challenge"])  # the person allows
    page = _redirect(query, code=code, scope=query["scope"])
    assert "access granted" in page
    assert proc.wait(60) == 0, proc.stderr.read()  # type: ignore[union-attr]
    err = proc.stderr.read()  # type: ignore[union-attr]
    out = "".join(_drain(lines))
    path = tmp_path / "var" / "oauth2-token.json"
    assert f"refresh token stored in {path} (mode 0600)" in out
    assert "INTAKE_IMAP__AUTH=oauth2" in out  # it says how to use it
    assert path.stat().st_mode & 0o777 == 0o600
    stored = oauth.read_token(path)
    assert stored is not None and stored.account == "box@example.test"
    assert stored.refresh_token in google.refresh_tokens_of("box@example.test")
    assert stored.refresh_token not in out + err
    exchange = [r for r in google.requests if r.get("grant_type") == "authorization_code"][-1]
    assert exchange["code"] == code and exchange["code_verifier"]  # PKCE
    binding = _binding(tmp_path, google)
    assert google.introspect(oauth.access_token(binding, timeout=10).token) == {
        "active": True, "username": "box@example.test", "scope": "https://mail.google.com/",
    }  # fmt: skip


def test_intake_auth_gmail_refused_consent_and_missing_client_are_one_line_errors(tmp_path, google):
    env = _consent_env(tmp_path, google)
    proc, query, _ = _start_consent(env)
    _redirect(query, error="access_denied")  # the person clicked "Cancel"
    assert proc.wait(60) == 3
    err = proc.stderr.read()  # type: ignore[union-attr]
    said = " ".join(err.split())  # one message (terminal wrapping is cli._fail's business)
    assert err.count("error:") == 1 and "OAuth consent failed" in said
    assert "access_denied" in said and "Traceback" not in err
    assert not (tmp_path / "var" / "oauth2-token.json").exists()

    missing = subprocess.run(
        [sys.executable, "-m", "intake", "auth", "gmail", "--no-browser"],
        env={**env, "INTAKE_OAUTH__CLIENT_ID": ""},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and missing.stderr.count("error:") == 1
    assert "INTAKE_OAUTH__CLIENT_ID" in missing.stderr and "Traceback" not in missing.stderr


def test_the_settings_choose_the_sign_in_per_protocol_from_the_environment(
    tmp_path, monkeypatch, google
):
    (tmp_path / "intake.toml").write_text("")
    monkeypatch.setenv("INTAKE_IMAP__AUTH", "oauth2")
    monkeypatch.setenv("INTAKE_OAUTH__CLIENT_SECRET", "shh-client-secret")
    monkeypatch.setenv("INTAKE_OAUTH__TOKEN_URI", google.token_uri)
    settings = load_settings(tmp_path / "intake.toml")
    assert (settings.imap.auth, settings.smtp.auth) == ("oauth2", "password")
    assert settings.imap.oauth is not None and settings.smtp.oauth is settings.imap.oauth
    assert settings.imap.oauth.client.token_uri == google.token_uri
    assert settings.oauth.scope == "https://mail.google.com/"
    assert "shh-client-secret" not in json.dumps(settings.describe(), default=str)
    from intake.logs import settings_secrets

    assert "shh-client-secret" in settings_secrets(settings)


def test_a_token_endpoint_out_of_reach_is_transient_and_marks_nothing(tmp_path, google):
    from intake.errors import MailboxUnavailable
    from tests.servers import free_port

    binding = _binding(tmp_path, google)
    oauth.store_consent(binding.token_path, google.issue_refresh_token("d@example.test"), "", "")
    away = OAuthBinding(
        binding.client.model_copy(update={"token_uri": f"http://127.0.0.1:{free_port()}/token"}),
        binding.token_path,
    )
    with pytest.raises(MailboxUnavailable) as down:
        oauth.access_token(away, timeout=5)
    assert not isinstance(down.value, MailboxLoginFailed)  # the next cycle simply tries again
    assert "cannot reach the OAuth 2.0 token endpoint" in str(down.value)
    assert oauth.token_problem(binding.token_path) is None
    assert oauth.access_token(binding, timeout=10).fresh  # back: the same refresh token works
