"""The web page's HTTP rules in-process (Starlette's TestClient): who may see it, CSRF on every
action, security headers, downloads. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pydantic import SecretStr

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from intake.errors import ConfigError
from intake.settings import WebSettings
from intake.web import check_bind, create_app, is_loopback
from storage.session import migrate, session_scope
from tests.coordinator_seed import Seeded, seed
from tests.intake_env import REPO, settings_env

TOKEN = "s3cret-token-for-tests"
HTML = {"accept": "text/html,application/xhtml+xml"}
BASE = "http://127.0.0.1:8080"  # the Host the page answers to (web.port's default)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    tmp = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{tmp / 'intake.db'}"
    migrate(url)
    return seed(tmp, url)


def _client(db: Seeded, token: str = "", host: str = "127.0.0.1") -> TestClient:
    db.svc.settings.web = WebSettings(token=SecretStr(token))
    return TestClient(create_app(db.svc, host), base_url=BASE, follow_redirects=False)


def test_loopback_only_unless_a_token_is_set() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.0.2.10", "intake.example", "::"]))
    check_bind("127.0.0.1", "")
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(ConfigError, match="refusing"):
        check_bind("0.0.0.0", "")


def test_create_app_refuses_a_public_address_without_a_token(db: Seeded) -> None:
    with pytest.raises(ConfigError):
        _client(db, "", "0.0.0.0")


def test_loopback_without_a_token_serves_the_pages(db: Seeded) -> None:
    client = _client(db)
    page = client.get("/")
    assert page.status_code == 200 and '<html lang="th">' in page.text
    assert 'data-count="accepted">3<' in page.text and "<svg" in page.text
    for path in ("/review", "/sender/TH-50", "/sender/north-upper-2"):
        assert client.get(path).status_code == 200, path
    assert client.get("/sender/TH-999").status_code == 404
    headers = page.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    cookie = headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_with_a_token_every_page_needs_it(db: Seeded) -> None:
    client = _client(db, TOKEN, "0.0.0.0")
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    redirect = client.get("/review", headers=HTML)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login?next=/review"
    assert client.post("/act", data={"action": "resolve"}).status_code == 401
    assert client.get("/report.xlsx").status_code == 401
    # public: the health check, the login form and the blank template (the letter's QR code)
    assert client.get("/healthz").text == "ok"
    assert client.get("/login").status_code == 200
    template = client.get("/template.xlsx")
    assert template.status_code == 200 and template.content[:2] == b"PK"

    assert client.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    basic = base64.b64encode(f"somsri:{TOKEN}".encode()).decode()
    assert client.get("/", headers={"authorization": f"Basic {basic}"}).status_code == 200
    bad = base64.b64encode(b"somsri:guess").decode()
    assert client.get("/", headers={"authorization": f"Basic {bad}"}).status_code == 401


def _csrf(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_login_form_sets_a_session_and_actions_need_the_csrf_token(db: Seeded) -> None:
    client = _client(db, TOKEN, "0.0.0.0")
    csrf = _csrf(client.get("/login").text)
    wrong = client.post("/login", data={"csrf": csrf, "token": "guess", "next": "/review"})
    assert wrong.status_code == 401 and "ไม่ถูกต้อง" in wrong.text
    assert client.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF token
    ok = client.post(
        "/login", data={"csrf": csrf, "token": TOKEN, "name": "สมศรี", "next": "//evil.example/"}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"  # no open redirect
    page = client.get("/review", headers=HTML)
    assert page.status_code == 200 and "สมศรี" in page.text

    form = {"action": "resolve", "item_id": "1", "note": "ทดสอบ", "next": "/review"}
    assert client.post("/act", data=form).status_code == 403
    assert client.post("/act", data={**form, "csrf": "forged"}).status_code == 403
    done = client.post("/act", data={**form, "csrf": _csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/review"
    assert "ปิดรายการตรวจสอบลำดับที่ 1" in client.get("/review", headers=HTML).text


def test_downloads_are_workbooks(db: Seeded) -> None:
    client = _client(db)
    report = client.get("/report.xlsx")
    assert report.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "filename*=UTF-8''" in report.headers["content-disposition"]
    assert load_workbook(io.BytesIO(report.content)).sheetnames[0] == "สถานะการส่งข้อมูล"
    export = client.get("/export.xlsx")  # intake.export exists in this tree
    assert export.status_code == 200 and export.content[:2] == b"PK"
    assert 'href="/export.xlsx"' in client.get("/").text


def test_the_template_link_in_the_qr_code_uses_the_public_url(db: Seeded, tmp_path: Path) -> None:
    db.svc.settings.web = WebSettings(public_url="https://intake.moi.example/")
    page = TestClient(create_app(db.svc), base_url=BASE).get("/").text
    assert "https://intake.moi.example/template.xlsx" in page


# --- issue 11: Host, credentials, throttle, sessions, links ---------------------------------------

REBIND = "rebind.attacker.example:8080"


def _open_items(db: Seeded) -> int:
    from intake.review import pending

    with session_scope(db.svc.factory) as session:
        return len(pending(session))


def test_a_foreign_host_gets_400_and_changes_nothing(db: Seeded) -> None:
    """DNS rebinding: the attacker's name resolves to 127.0.0.1; no token on loopback."""
    client = _client(db)
    before = _open_items(db)
    for path in ("/", "/review", "/report.xlsx", "/login", "/healthz"):
        assert client.get(path, headers={"host": REBIND}).status_code == 400, path
    form = {"action": "resolve", "item_id": "1", "note": "x", "next": "/review"}
    assert client.post("/act", data=form, headers={"host": REBIND}).status_code == 400
    assert client.get("/", headers={"host": "127.0.0.1.attacker.example"}).status_code == 400
    assert _open_items(db) == before
    for name in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "localhost."):
        assert client.get("/healthz", headers={"host": name}).status_code == 200, name
    db.svc.settings.web = WebSettings(public_url="https://intake.moi.example/")
    public = TestClient(create_app(db.svc), base_url="https://intake.moi.example")
    assert public.get("/healthz").status_code == 200
    assert public.get("/healthz", headers={"host": REBIND}).status_code == 400


def test_non_ascii_credentials_are_refused_not_a_crash(db: Seeded) -> None:
    client = _client(db, TOKEN, "0.0.0.0")
    client.app.state.web.throttle.FREE = 100  # type: ignore[attr-defined] # the answer, not the wait
    bearer = {"authorization": "Bearer รหัสลับ".encode()}
    assert client.get("/", headers=bearer).status_code == 401
    for raw in ("somsri:รหัสลับ".encode(), b"somsri:\xff\xfe", b"\xff:" + TOKEN.encode()):
        basic = {"authorization": b"Basic " + base64.b64encode(raw)}
        assert client.get("/", headers=basic).status_code == 401
    assert client.get("/", headers={"authorization": b"Basic \xe0\xb8\x81"}).status_code == 401
    csrf = _csrf(client.get("/login").text)
    login = client.post("/login", data={"csrf": csrf, "token": "รหัสลับ"})
    assert login.status_code == 401
    assert client.post("/login", data={"csrf": "ปลอม", "token": TOKEN}).status_code == 403


def test_failed_logins_are_throttled_per_client_across_every_way_in(db: Seeded) -> None:
    client = _client(db, TOKEN, "0.0.0.0")
    web = client.app.state.web  # type: ignore[attr-defined]
    now = [1000.0]
    web.throttle.clock = lambda: now[0]
    csrf = _csrf(client.get("/login").text)
    wrong_basic = {"authorization": "Basic " + base64.b64encode(b"x:guess").decode()}
    # free typos, then doubling waits; bearer, basic and the form count together
    assert client.get("/", headers={"authorization": "Bearer guess1"}).status_code == 401
    assert client.get("/", headers=wrong_basic).status_code == 401
    assert client.post("/login", data={"csrf": csrf, "token": "guess3"}).status_code == 401
    assert client.get("/", headers={"authorization": "Bearer guess4"}).status_code == 401
    good = {"authorization": f"Bearer {TOKEN}"}
    blocked = client.get("/", headers=good)  # even the right token waits: no guess is checked
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "1"
    form = client.post("/login", data={"csrf": csrf, "token": TOKEN})
    assert form.status_code == 429 and "กรุณารอ 1 วินาที" in form.text
    now[0] += 1.5
    assert client.get("/", headers={"authorization": "Bearer guess5"}).status_code == 401
    assert client.get("/", headers=good).headers["retry-after"] == "2"
    now[0] += 2.5
    assert client.get("/", headers=wrong_basic).status_code == 401
    assert client.get("/", headers=wrong_basic).headers["retry-after"] == "4"
    now[0] += 4.5
    assert client.get("/", headers=good).status_code == 200  # success forgets the client
    assert client.get("/", headers={"authorization": "Bearer guess"}).status_code == 401
    assert client.get("/", headers=good).status_code == 200
    # another client is not held up by this one's failures
    for _ in range(6):
        web.throttle.failed("192.0.2.66")
    assert web.throttle.wait("192.0.2.66") > 0 and web.throttle.wait("testclient") == 0


def test_a_short_token_does_not_start_beyond_loopback(db: Seeded) -> None:
    for short in ("x", "a b c d e f g h i j k l m n o", "               0123456789abcde"):
        with pytest.raises(ConfigError, match=r"web\.token \(INTAKE_WEB__TOKEN\).*at least 16"):
            check_bind("0.0.0.0", short)
    check_bind("0.0.0.0", "0123456789abcdef")
    check_bind("127.0.0.1", "x")  # on loopback any token (or none) is the operator's choice
    with pytest.raises(ConfigError):
        _client(db, "short-token", "0.0.0.0")


def _cookie_data(set_cookie: str) -> str:
    value = set_cookie.split("intake_session=", 1)[1].split(";", 1)[0].strip('"')
    payload = value.split(".", 1)[0]
    return base64.b64decode(payload + "=" * (-len(payload) % 4)).decode()


def test_the_session_is_server_side_and_logout_ends_it(db: Seeded) -> None:
    client = _client(db, TOKEN, "0.0.0.0")
    csrf = _csrf(client.get("/login").text)
    ok = client.post("/login", data={"csrf": csrf, "token": TOKEN, "name": "สมศรี"})
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    data = _cookie_data(cookie)
    assert '"sid"' in data and TOKEN not in data
    assert hashlib.sha256(TOKEN.encode()).hexdigest() not in data and "auth" not in data
    assert "secure" not in cookie.lower()  # plain http on this machine
    stolen = client.cookies.get("intake_session")
    page = client.get("/review", headers=HTML)
    assert page.status_code == 200
    assert client.post("/logout", data={"csrf": _csrf(page.text)}).status_code == 303

    replay = _client(db, TOKEN, "0.0.0.0")
    replay.app = client.app
    replay.cookies.set("intake_session", stolen or "")
    assert replay.get("/review").status_code == 401  # the old cookie no longer works


def test_the_cookie_is_secure_when_the_public_url_is_https(db: Seeded) -> None:
    db.svc.settings.web = WebSettings(
        token=SecretStr(TOKEN), public_url="https://intake.moi.example"
    )
    client = TestClient(create_app(db.svc, "0.0.0.0"), base_url="https://intake.moi.example")
    csrf = _csrf(client.get("/login").text)
    ok = client.post("/login", data={"csrf": csrf, "token": TOKEN}, follow_redirects=False)
    assert ok.status_code == 303 and "; secure" in ok.headers["set-cookie"].lower()


def test_links_never_come_from_the_host_header(db: Seeded) -> None:
    client = _client(db)
    page = client.get("/", headers={"host": "localhost:8080"}).text
    assert "http://127.0.0.1:8080/template.xlsx" in page and "localhost:8080" not in page
    db.svc.settings.web = WebSettings()
    bound = TestClient(create_app(db.svc, "127.0.0.2", 9000), base_url="http://127.0.0.2:9000")
    assert "http://127.0.0.2:9000/template.xlsx" in bound.get("/").text


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _intake_web(
    tmp: Path, url: str, **env: str
) -> Iterator[Callable[..., tuple[int, dict[str, str], str]]]:
    """A real `intake web` process on 127.0.0.1; yields `call(method, path, headers, body)`."""
    port = _free_port()
    variables = {**settings_env(tmp, url), **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "intake", "web", "--port", str(port)], env=variables, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def call(
        method: str, path: str, headers: dict[str, Any] | None = None, body: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
            if body is not None:
                sent["Content-Type"] = "application/x-www-form-urlencoded"
                sent["Content-Length"] = str(len(body.encode()))
            for key, value in sent.items():
                conn.putheader(key, value)
            conn.endheaders(body.encode() if body is not None else None)
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read().decode(),
            )
        finally:
            conn.close()

    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "intake web did not answer within 30 s"
            try:
                if call("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield call
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_a_real_intake_web_checks_host_and_credentials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    db = seed(tmp_path, url)
    before = _open_items(db)
    with _intake_web(tmp_path, url) as call:  # loopback, no token: the rebinding case
        assert call("GET", "/review")[0] == 200
        assert call("GET", "/review", {"Host": REBIND})[0] == 400
        status, _, _ = call("POST", "/act", {"Host": REBIND}, "action=resolve&item_id=1&note=x")
        assert status == 400
    assert _open_items(db) == before

    with _intake_web(tmp_path, url, INTAKE_WEB__TOKEN=TOKEN) as call:
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert call("GET", "/", good)[0] == 200
        assert call("GET", "/", {**good, "Host": REBIND})[0] == 400
        assert call("GET", "/", {"Authorization": "Bearer รหัส".encode()})[0] == 401
        basic = b"Basic " + base64.b64encode("x:รหัส".encode())
        assert call("GET", "/", {"Authorization": basic})[0] == 401
        assert call("GET", "/", {"Authorization": "Bearer wrong"})[0] == 401
        assert call("GET", "/", {"Authorization": "Bearer wrong"})[0] == 401
        status, headers, _ = call("GET", "/", good)
        assert status == 429 and int(headers["retry-after"]) >= 1


def test_intake_web_refuses_a_short_token_beyond_loopback(tmp_path: Path) -> None:
    env = {**settings_env(tmp_path, f"sqlite:///{tmp_path / 'intake.db'}"),
           "INTAKE_WEB__TOKEN": "guessable"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "intake", "web", "--host", "0.0.0.0", "--port", "1"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    shown = " ".join(proc.stderr.split())  # Rich wraps the line
    assert "web.token (INTAKE_WEB__TOKEN) has 9 non-space characters" in shown


def test_the_page_says_how_many_senders_no_reminder_can_reach(db: Seeded) -> None:
    from storage import queries

    with session_scope(db.svc.factory) as session:
        unverified = len(queries.unverified_expected_senders(session))
    page = _client(db).get("/").text
    assert 0 < unverified < 94
    assert f"ยังไม่มีอีเมลที่ยืนยันแล้ว {unverified} หน่วย" in page
    assert "senders/addresses.csv" in page and "intake review add-address SENDER ADDRESS" in page
