"""The web page's HTTP rules in-process (Starlette's TestClient): who may see it, CSRF on every
action, security headers, downloads. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pydantic import SecretStr

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from intake.errors import ConfigError
from intake.settings import WebSettings
from intake.web import check_bind, create_app, is_loopback
from storage.session import migrate
from tests.coordinator_seed import Seeded, seed

TOKEN = "s3cret-token-for-tests"
HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    tmp = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{tmp / 'intake.db'}"
    migrate(url)
    return seed(tmp, url)


def _client(db: Seeded, token: str = "", host: str = "127.0.0.1") -> TestClient:
    db.svc.settings.web = WebSettings(token=SecretStr(token))
    return TestClient(create_app(db.svc, host), follow_redirects=False)


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
    page = TestClient(create_app(db.svc)).get("/").text
    assert "https://intake.moi.example/template.xlsx" in page
