"""The API's docs page in headless Chromium: rendered from the served OpenAPI document, every
operation and every problem type on it, no script errors; a screenshot for a person to look
at (artifacts/http-api-docs.png)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from test_e2e_dashboard import ARTIFACTS, _console_errors, browser  # noqa: F401 - fixture

from adressat.testing.server import ServerProcess

pytestmark = pytest.mark.slow


def test_the_docs_page_shows_every_operation_and_problem(tmp_path: Path,
                                                         browser: WebDriver) -> None:  # noqa: F811
    with ServerProcess(tmp_path / "home", None, "--quiet-network") as server:
        base = f"http://127.0.0.1:{server.http_port}"
        with urllib.request.urlopen(base + "/openapi.json", timeout=10) as r:  # noqa: S310
            doc = json.load(r)
        browser.get(base + "/docs")
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        for path, ops in doc["paths"].items():
            for method in ops:
                assert f"{method.upper()} {path}" in headings, (method, path, headings)
        rows = browser.find_elements(By.CSS_SELECTOR, "tr[id^='problem-']")
        assert len(rows) >= 20
        # a problem type's URI, followed as a browser would, lands on its row
        browser.get(base + "/problems/idempotency-key-reused")
        assert browser.current_url.endswith("/docs#problem-idempotency-key-reused")
        assert "Idempotency-Key" in browser.find_element(
            By.ID, "problem-idempotency-key-reused").text
        browser.get(base + "/docs")
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "http-api-docs.png"))
        assert _console_errors(browser) == []
