"""The page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
the status picture of a seeded database, an action in the review queue, and the login wall of a
real `intake web` process bound beyond loopback. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from intake.settings import os_user
from intake.web import create_app
from storage.models import AuditEvent, ReviewItem, ReviewState
from storage.session import migrate, session_scope
from tests.coordinator_seed import EXPECTED_SUMMARY, Seeded, seed
from tests.intake_env import REPO, settings_env

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "browser-test-token"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} missing: apt-get install chromium chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--window-size=1400,1000", "--lang=th",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Seeded, str]]:
    """A seeded SQLite database behind the real app on 127.0.0.1 (uvicorn in a thread)."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    db = seed(tmp_path, url)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(db.svc, "127.0.0.1", port), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield db, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _shoot(driver: webdriver.Chrome, name: str, width: int, full: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(width, 1000)
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, int(height) + 40)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def test_status_picture_shows_the_seeded_counts(browser, served) -> None:  # type: ignore[no-untyped-def]
    _, base = served
    browser.get(base + "/")
    counts = {
        el.get_attribute("data-count"): el.text.split("/")[0].strip()
        for el in browser.find_elements(By.CSS_SELECTOR, "[data-count]")
    }
    assert counts == {
        "accepted": str(EXPECTED_SUMMARY["accepted"]),
        "needs_correction": str(EXPECTED_SUMMARY["needs_correction"]),
        "missing": str(EXPECTED_SUMMARY["missing"]),
        "late": "0",
        "review": "4",
    }
    tiles = browser.find_elements(By.CSS_SELECTOR, "a.tile")
    assert len(tiles) == 76
    by_status: dict[str, set[str]] = {}
    for tile in tiles:
        by_status.setdefault(tile.get_attribute("data-status") or "", set()).add(
            tile.get_attribute("data-id") or ""
        )
    assert by_status["accepted"] == {"TH-50", "TH-57"}
    assert by_status["needs_correction"] == {"TH-51"}
    assert len(by_status["missing"]) == 73
    cluster = browser.find_element(By.CSS_SELECTOR, '.cluster[data-id="north-upper-2"]')
    assert "accepted" in (cluster.get_attribute("class") or "")
    assert "2 วัน 13" in browser.find_element(By.ID, "countdown").text
    # Thai is laid out with a Thai font, not boxes: the title's width is that of real glyphs
    assert browser.execute_script("return document.fonts.check('16px \"Noto Sans Thai\"') "
                                  "|| document.fonts.check('16px Loma')")  # fmt: skip
    assert browser.find_element(By.CSS_SELECTOR, "svg[aria-label='QR code']")
    assert _shoot(browser, "web-main.png", 1400).stat().st_size > 50_000
    _shoot(browser, "web-phone.png", 390, full=False)
    layout_width = browser.execute_script("return document.documentElement.scrollWidth")
    assert layout_width <= 1400
    browser.get(base + "/sender/TH-51")
    assert "ลำพูน" in browser.find_element(By.TAG_NAME, "h1").text
    _shoot(browser, "web-sender.png", 1400)


def test_an_action_in_the_review_queue_changes_the_database(browser, served) -> None:  # type: ignore[no-untyped-def]
    db, base = served
    item_id = _item_of(db, db.unknown_form_message)
    browser.get(base + "/review")
    _shoot(browser, "web-review.png", 1400)
    item = browser.find_element(By.CSS_SELECTOR, f"#item-{item_id}")
    form = item.find_element(By.CSS_SELECTOR, "form[data-action=assign]")
    Select(form.find_element(By.NAME, "sender_id")).select_by_value("TH-53")
    form.find_element(By.NAME, "note").send_keys("โทรยืนยันกับจังหวัดแล้ว")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    flash = WebDriverWait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, ".flash.ok"))
    assert "อุตรดิตถ์" in flash.text

    with session_scope(db.svc.factory) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "assign_message")
        ).one()
        assert event.actor == f"{os_user()} (web)" and event.detail["sender_id"] == "TH-53"
        item_row = session.get(ReviewItem, item_id)
        assert item_row is not None and item_row.state == ReviewState.RESOLVED
    browser.get(base + "/")
    tile = browser.find_element(By.CSS_SELECTOR, 'a.tile[data-id="TH-53"]')
    assert tile.get_attribute("data-status") == "accepted"


def _item_of(db: Seeded, message_id: int) -> int:
    with session_scope(db.svc.factory) as session:
        return int(
            session.scalars(select(ReviewItem.id).where(ReviewItem.message_id == message_id)).one()
        )


def test_beyond_loopback_the_real_server_wants_the_token(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    seed(tmp_path, url)
    host, port = "127.0.0.2", _free_port("127.0.0.2")
    env = {**settings_env(tmp_path, url), "INTAKE_WEB__TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "intake", "web", "--host", host, "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://{host}:{port}"
    try:
        _wait_healthy(base, proc)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/review", timeout=5)
        assert refused.value.code == 401
        bearer = urllib.request.Request(base + "/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert urllib.request.urlopen(bearer, timeout=5).status == 200

        browser.delete_all_cookies()
        browser.get(base + "/review")
        assert browser.current_url == base + "/login?next=/review"
        browser.find_element(By.ID, "token").send_keys("wrong")
        browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        error = WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".flash.error")
        )
        assert "ไม่ถูกต้อง" in error.text
        browser.find_element(By.ID, "name").send_keys("สมศรี")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        WebDriverWait(browser, 10).until(lambda d: d.current_url == base + "/review")
        assert "รายการรอตรวจสอบ" in browser.find_element(By.TAG_NAME, "h1").text
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert TOKEN not in output  # never logged


def _wait_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"intake web exited: {proc.communicate()[0]}")
        try:
            if urllib.request.urlopen(base + "/healthz", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("intake web did not answer within 30 s")
