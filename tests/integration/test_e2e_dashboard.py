"""The dashboard in a real browser: headless Chromium driven by Selenium, against a running node
with traffic (the test kit's load generator).

* the page loads with no console error, the numbers appear (bounded wait) and match what the
  JSON APIs answer at about the same time: open alerts, canary rows per route and node, queue
  depth, the last full second of throughput, the places of the failure-rate table;
* they change without a reload (a fault at msc-2: its alert and failure rate come up, as the
  APIs say); times are shown in the viewer's zone (the browser runs in
  Asia/Kolkata, UTC+05:30, the node in UTC);
* the care console's lookup form shows the table ``/v1/care/lookup`` answers; its complaint
  form (the caller's number, "about when" in the viewer's zone, the sender) shows the verdict
  and the complaint recorded is that one;
* a screenshot is kept as a test artefact: ``artifacts/dashboard.png`` (the path is printed);
* the node going away is shown as "node unreachable" and the page recovers by itself when the
  node is back (restarted on the same ports), without a reload.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (scripts/test installs them).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from e2e_kit import BackgroundLoad, wait_for

from adressat.store.sqlite import SqliteStore
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, free_port

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
VIEWER_ZONE = "Asia/Kolkata"  # not the node's (UTC): a time shown in the node's zone is wrong
RATE_PER_S = 40  # the background traffic
CARE_NUMBER = "46701000123"
CARE_MESSAGES = 5


_R = TypeVar("_R")


def _wait(cond: Callable[[], _R], timeout_s: float, step_s: float = 0.2) -> _R:
    return wait_for(cond, timeout_s, step_s)


def _api(server: ServerProcess, path: str) -> Any:
    code, body = server.http_get(path)
    assert code == 200, (path, code, body[:300])
    return json.loads(body)


# --- the browser -------------------------------------------------------------------------------
@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, ("this test needs headless Chromium: apt-get install chromium"
                                 " chromium-driver (scripts/test installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--window-size=1400,1200", "--lang=en-GB"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(driver, env={"TZ": VIEWER_ZONE, "PATH": "/usr/bin:/bin"})
    b = webdriver.Chrome(service=service, options=opts)
    b.set_page_load_timeout(30)
    b.set_script_timeout(10)
    try:
        yield b
    finally:
        b.quit()


# Chromium puts every HTTP error answer on the console; a node that is not ready (yet) answers
# /health/ready with 503 and its reasons, which the page shows: the node's word, not a fault
NOT_READY = "/health/ready - Failed to load resource: the server responded with a status of 503"


def _console_errors(b: WebDriver, allowed: tuple[str, ...] = ()) -> list[str]:
    """The console's errors since the last call (reading the log empties it)."""
    return [e["message"] for e in b.get_log("browser")
            if e["level"] == "SEVERE" and not any(a in e["message"]
                                                  for a in (NOT_READY, *allowed))]


def _text(b: WebDriver, elem_id: str) -> str:
    return str(b.find_element(By.ID, elem_id).text)


def _value(b: WebDriver, elem_id: str) -> str:
    return str(b.find_element(By.ID, elem_id).get_attribute("data-value") or "")


def _rows(b: WebDriver, table_id: str) -> list[dict[str, Any]]:
    out = b.execute_script(
        """return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')].map(r => ({
             data: Object.assign({}, r.dataset),
             cells: [...r.cells].map(c => c.textContent.trim())}));""", table_id)
    return list(out)


API = ("/v1/live", "/v1/alerts?limit=200", "/v1/canaries")  # what the page asks (and /status)
FIGURES = ("tp-accepted", "tp-delivered", "tp-failed", "q-unfinished", "q-due", "alerts-open")
TABLES = ("alerts-table", "canaries-table", "places-table")


def _snapshot(b: WebDriver) -> dict[str, Any]:
    """Everything the tests compare, read in one script (the page's rounds cannot interleave)."""
    out = b.execute_script(
        """const [figs, tables] = arguments, out = {};
           for (const id of figs) { const e = document.getElementById(id);
             out[id] = {text: e.textContent.trim(), value: e.dataset.value}; }
           const s = document.getElementById('tp-second');
           out['tp-second'] = {text: s.textContent.trim(), t: s.dataset.t};
           for (const id of tables) out[id] = [...document.querySelectorAll(
             '#' + id + ' tbody tr')].map(r => ({data: Object.assign({}, r.dataset),
               cells: [...r.cells].map(c => c.textContent.trim())}));
           return out;""", list(FIGURES), list(TABLES))
    return dict(out)


def _int(page: dict[str, Any], elem_id: str) -> int:
    """A figure as the page shows it (grouped with commas), the same as its data-value."""
    text = page[elem_id]["text"].replace(",", "")
    assert text.isdigit() and text == page[elem_id]["value"], (elem_id, page[elem_id])
    return int(text)


def _screenshot(b: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    height = int(b.execute_script("return document.documentElement.scrollHeight"))
    b.set_window_size(1400, min(max(height + 140, 800), 4000))  # + the window's own frame
    b.execute_script("window.scrollTo(0, 0)")
    path = ARTIFACTS / name
    assert b.save_screenshot(str(path)), "no screenshot"
    print(f"\nscreenshot: {path}")
    return path


# --- the node and its traffic --------------------------------------------------------------------
def Traffic(smpp_port: int, duration_s_max: float = 240.0) -> BackgroundLoad:  # noqa: N802
    """RATE_PER_S with receipts, to 5,000 numbers in turn (e2e_kit.BackgroundLoad)."""
    return BackgroundLoad(smpp_port, RATE_PER_S, lambda n: str(46701000200 + n % 5000),
                          duration_s_max, registered_delivery=1)


def _node(home: Path, http_port: int, smpp_port: int) -> ServerProcess:
    return ServerProcess(home, smpp_port, "--subscribers", "10000",
                         "--http-port", str(http_port))


def _care_messages(port: int) -> list[str]:
    """CARE_MESSAGES messages from the sender "ACME" to CARE_NUMBER; their ids."""

    async def run() -> list[str]:
        c = EsmeClient("127.0.0.1", port, "care", "care", window=5, source_addr="ACME")
        await c.connect(retry_for_s=5.0)
        try:
            recs = await c.submit_many([CARE_NUMBER] * CARE_MESSAGES)
            return [r.message_id for r in recs if r.message_id]
        finally:
            await c.close()

    return asyncio.run(asyncio.wait_for(run(), 30.0))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for account in ("load", "care"):
        out = adressat(home, "account", "add", account, "--password", account)
        assert out.returncode == 0, out.stderr
    return home


def _compare(b: WebDriver, server: ServerProcess) -> dict[str, Any]:
    """The page's figures against the APIs asked just before the page's round and just after
    it; returns the page's snapshot."""
    # each figure against the API asked just before the page's round and just after it
    live0, alerts0, can0 = (_api(server, p) for p in API)
    asked = time.time()
    assert _wait(lambda: float(b.find_element(By.ID, "updated").get_attribute(
        "data-began") or 0) > asked, 5)
    page = _snapshot(b)  # one round's figures, read at once
    live1, alerts1, can1 = (_api(server, p) for p in API)

    # throughput: the last full second; its counts only grow while late attempts come in
    second = float(page["tp-second"]["t"])
    shown = {k: _int(page, f"tp-{k}") for k in ("accepted", "delivered", "failed")}
    s0, s1 = live0["series"], live1["series"]
    assert second in s1["t"], (second, s1["t"][-5:])
    for name, value in shown.items():
        low = s0[name][s0["t"].index(second)] if second in s0["t"] else 0
        high = s1[name][s1["t"].index(second)]
        assert low - 2 <= value <= high + 2, (name, value, low, high)
    assert 0 < shown["accepted"] <= RATE_PER_S * 3, shown
    # in the viewer's zone, not the node's
    assert page["tp-second"]["text"] == datetime.fromtimestamp(
        second, ZoneInfo(VIEWER_ZONE)).strftime("%H:%M:%S"), page["tp-second"]

    # queue depth within what it could move by between the two API answers
    q0, q1 = live0["queue"], live1["queue"]
    slack = RATE_PER_S
    for name in ("unfinished", "due"):
        value = _int(page, f"q-{name}")
        assert min(q0[name], q1[name]) - slack <= value <= max(q0[name], q1[name]) + slack, (
            name, value, q0, q1)

    # open alerts: firing, or resolved and not acknowledged (as /v1/live counts them)
    open_alerts = int(page["alerts-open"]["value"])
    counts = [sum(1 for a in x["alerts"] if a["state"] == "firing" or not a["acknowledged"])
              for x in (alerts0, alerts1)]
    assert open_alerts in counts, (open_alerts, counts)
    assert open_alerts in (live0["alerts_open"], live1["alerts_open"]), open_alerts
    assert len(page["alerts-table"]) == max(open_alerts, 1)  # or the "none" row
    canary_rows, place_rows = page["canaries-table"], page["places-table"]
    shown_ids = {r["data"]["id"] for r in page["alerts-table"] if "id" in r["data"]}
    open_ids = [{a["id"] for a in x["alerts"] if a["state"] == "firing" or not a["acknowledged"]}
                for x in (alerts0, alerts1)]
    assert {int(i) for i in shown_ids} in open_ids, (shown_ids, open_ids)

    # canaries: one row per route and node, with its verdict
    def canaries(body: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {(c["route"] or "", c["serving_node"] or "", str(bool(c["all_passed"])).lower())
                for c in body["canaries"]}

    shown_canaries = {(r["data"]["route"], r["data"]["node"], r["data"]["allPassed"])
                      for r in canary_rows}
    assert shown_canaries in (canaries(can0), canaries(can1)), (shown_canaries,
                                                                 canaries(can1))
    assert len(canary_rows) == len(can1["canaries"])
    summary = b.find_element(By.ID, "canaries-summary")
    assert summary.get_attribute("data-total") == str(len(canary_rows))

    # the failure-rate table: the places of the API's answer
    def places(body: dict[str, Any]) -> set[tuple[str, str]]:
        return {(p["route"] or "", p["serving_node"] or "") for p in body["places"]}

    shown_places = {(r["data"]["route"], r["data"]["node"]) for r in place_rows
                    if "route" in r["data"]}
    assert shown_places in (places(live0), places(live1)), (shown_places, places(live1))
    assert shown_places, "traffic but no place in the failure-rate table"
    for r in place_rows:  # each place's failure rate, as the API had it before and after
        rates = [p["failure_rate"] or 0.0 for x in (live0, live1) for p in x["places"]
                 if (p["route"] or "", p["serving_node"] or "") == (r["data"]["route"],
                                                                  r["data"]["node"])]
        shown_rate = float(r["cells"][4].split()[0]) / 100
        assert min(rates) - 0.02 <= shown_rate <= max(rates) + 0.02, (r, rates)
    return page



# --- the tests ---------------------------------------------------------------------------------
def test_the_dashboard_shows_what_the_apis_say(home: Path, browser: WebDriver) -> None:
    http_port, smpp_port = free_port(), free_port()
    b = browser
    with _node(home, http_port, smpp_port) as server, Traffic(smpp_port) as traffic:
        ids = _care_messages(smpp_port)
        assert len(ids) == CARE_MESSAGES
        b.get(f"http://127.0.0.1:{http_port}/")
        assert b.title.startswith("adressat")
        b.execute_script("window.__loadedOnce = 'yes'")  # a reload would lose it

        # the numbers appear: the last full second with traffic in it, canary rows, health
        assert _wait(lambda: _value(b, "tp-accepted") not in ("", "0"), 30), (
            _text(b, "tp-accepted"), _text(b, "n-live"))
        assert _wait(lambda: _text(b, "health") == "READY", 15), _text(b, "health")
        assert _wait(lambda: any(r["data"] for r in _rows(b, "canaries-table")), 30), (
            _rows(b, "canaries-table"), _text(b, "n-canaries"))
        assert _text(b, "tz") in (VIEWER_ZONE, "Asia/Calcutta")  # ICU's older name for it
        assert not b.find_element(By.ID, "conn").is_displayed()

        page = _compare(b, server)
        second = float(page["tp-second"]["t"])
        assert int(page["alerts-open"]["value"]) == 0, page["alerts-table"]  # normal traffic

        # it moves on without a reload
        assert _wait(lambda: float(b.find_element(By.ID, "tp-second").get_attribute("data-t")
                                   or 0) > second, 5)
        updated = _text(b, "updated")
        assert _wait(lambda: _text(b, "updated") != updated, 5)
        assert b.execute_script("return window.__loadedOnce") == "yes"

        # a fault at one serving node: the alert naming it and its failure rate come up on
        # the page by themselves, as the APIs say
        out = adressat(home, "fault", "on", "system_failure", "--node", "msc-2", "--rate", "0.3")
        assert out.returncode == 0, out.stderr

        def alert_shown() -> list[dict[str, Any]]:
            return [r for r in _rows(b, "alerts-table") if "msc-2" in " ".join(r["cells"][1:2])]

        assert _wait(alert_shown, 60, 0.5), (_rows(b, "alerts-table"), _api(server, API[1]))
        page = _compare(b, server)
        assert int(page["alerts-open"]["value"]) >= 1
        msc2 = [r for r in page["places-table"] if r["data"].get("node") == "msc-2"]
        assert msc2 and float(msc2[0]["cells"][4].split()[0]) > 0, page["places-table"]
        assert b.execute_script("return window.__loadedOnce") == "yes"

        # care console: the lookup form shows what /v1/care/lookup answers
        before = _api(server, f"/v1/care/lookup?number={CARE_NUMBER}")
        b.find_element(By.ID, "lookup-number").send_keys(CARE_NUMBER)
        b.find_element(By.CSS_SELECTOR, "#lookup-form button[type=submit]").click()
        assert _wait(lambda: "message" in _text(b, "lookup-note"), 10), _text(b, "lookup-note")
        looked = _rows(b, "lookup-table")
        after = _api(server, f"/v1/care/lookup?number={CARE_NUMBER}")

        def lookup(body: dict[str, Any]) -> list[tuple[str, ...]]:
            return [(str(m.get("id", m.get("message_id"))), str(m.get("state")),
                     str(m.get("route") or "—"), str(m.get("serving_node") or "—"))
                    for m in body["messages"]]

        shown_lookup = [(r["data"]["id"], r["cells"][6], r["cells"][7], r["cells"][8])
                        for r in looked]
        assert shown_lookup in (lookup(before), lookup(after)), (shown_lookup, lookup(after))
        assert set(ids) <= {row[0] for row in shown_lookup}, (ids, shown_lookup)
        assert all(r["cells"][2] == "ACME" for r in looked if r["data"]["id"] in ids), looked

        # left open: the page does not grow (tables replaced, chart elements reused)
        count = "return document.getElementsByTagName('*').length"
        elements = int(b.execute_script(count))
        seen = {_text(b, "updated")}  # three more rounds, by themselves

        def three_more() -> bool:
            seen.add(_text(b, "updated"))
            return len(seen) >= 4

        assert _wait(three_more, 10), seen
        assert int(b.execute_script(count)) <= elements + 20, (elements,
                                                              b.execute_script(count))

        # the complaint form: the caller's own number, now in the viewer's zone, the sender
        # shown. The node finds the messages of ACME addressed to that very number
        b.find_element(By.ID, "complaint-number").send_keys(CARE_NUMBER)
        b.find_element(By.ID, "complaint-sender").send_keys("ACME")
        local_now = datetime.now(ZoneInfo(VIEWER_ZONE)).strftime("%Y-%m-%dT%H:%M:%S")
        b.execute_script("document.getElementById('complaint-about').value = arguments[0]",
                         local_now)
        asked_at = time.time()
        b.find_element(By.CSS_SELECTOR, "#complaint-form button[type=submit]").click()
        verdict = b.find_element(By.ID, "complaint-verdict")
        assert _wait(verdict.is_displayed, 10), _text(b, "complaint-note")
        shown_verdict = verdict.get_attribute("data-value")
        assert shown_verdict == "addressed_to_complainant", (shown_verdict,
                                                             _text(b, "complaint-details"))
        assert "recorded" in _text(b, "complaint-note")

        _screenshot(b, "dashboard.png")
        assert not _console_errors(b)

        # the page and its assets; any other name is a clear 404, never a file of the node
        for path in ("/", "/dashboard", "/static/dashboard.js", "/static/dashboard.css"):
            assert server.http_get(path)[0] == 200, path
        for path in ("/static/nope.js", "/static/..%2fdashboard.py", "/static/%2e%2e%2fhttp.py"):
            code, body = server.http_get(path)
            assert code == 404 and json.loads(body)["error"] == "not_found", (path, code, body)
        assert traffic.error is None, traffic.error
        assert traffic.submitted > 0
    # the complaint the page sent is the one recorded: the caller's number, the time the viewer
    # meant (in their zone), the verdict shown
    store = SqliteStore(home / "adressat.db")
    try:
        complaints = store.complaints_since(0, 10)
    finally:
        store.close()
    assert len(complaints) == 1, complaints
    c = complaints[0]
    assert (c.number, c.sender, c.verdict) == (CARE_NUMBER, "ACME", shown_verdict), c
    assert abs(c.about_at - asked_at) < 5, (c.about_at, asked_at)
    assert c.message_id in ids


def test_the_dashboard_says_node_unreachable_and_recovers(home: Path,
                                                           browser: WebDriver) -> None:
    http_port, smpp_port = free_port(), free_port()
    b = browser
    server = _node(home, http_port, smpp_port).start()
    try:
        b.get(f"http://127.0.0.1:{http_port}/dashboard")
        assert _wait(lambda: _text(b, "health") == "READY", 20), _text(b, "health")
        assert not _console_errors(b)
        server.stop()
        assert _wait(lambda: b.find_element(By.ID, "conn").is_displayed(), 10)
        assert "node unreachable since" in _text(b, "conn")
        seen_down = _text(b, "updated")
        server = _node(home, http_port, smpp_port).start()
        assert _wait(lambda: not b.find_element(By.ID, "conn").is_displayed(), 20), _text(
            b, "conn")
        assert _wait(lambda: _text(b, "health") == "READY", 20), _text(b, "health")
        assert _text(b, "updated") != seen_down
        assert _wait(lambda: b.find_element(By.ID, "restarted").is_displayed(), 5)
        assert "node restarted at" in _text(b, "restarted")
        # only the requests that found no one listening, nothing the page itself got wrong
        assert not _console_errors(b, allowed=("net::ERR_CONNECTION_REFUSED",
                                               "net::ERR_EMPTY_RESPONSE",
                                               "net::ERR_CONNECTION_RESET"))
    finally:
        server.stop()
