"""The reference portal (issue 18, docs/PORTAL.md) in a real headless Chromium.

A real ``symbolsvc portal serve`` process calls a real server over mTLS as the portal
principal; records and holdings are made by real agency and broker calls; the page is
read, watched and verified by Debian's chromium through selenium. The module shares one
server (on a deployment whose permission table gives rules a purpose, a legal basis and,
for one, deferred disclosure), one portal and one browser.

The portal is a client of the API and holds no storage: its cases run on the SQLite
deployment only (the disclosure API itself is tested on both backends elsewhere).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import (
    Clients,
    NumberSource,
    Registries,
    ServerProcess,
    config_with,
    copy_deployment,
    wait_until,
)
from helpers.portal import PortalProcess, TamperingProxy, chromium, get
from symbolsvc_client import CallError, Deployment

from bench import browser
from symbolsvc.portal import i18n
from symbolsvc.portal.links import load_key, mint
from symbolsvc.v1 import disclosure_service_pb2 as pb

pytestmark = pytest.mark.sqlite_only("the portal is an API client; the backends are "
                                     "covered by the disclosure tests")

REQUESTER, PROVIDER = "pension-service", "city-chiyoda"
OFFICE, ITEM = "survivor-pension", "resident-tax-income"
INVESTIGATOR = "tax-office"  # its inquiries are withheld from the person for 30 days
POLICY = """\
[groups]
municipalities = ["city-chiyoda", "city-minato"]

[[allow]]
id          = "survivor-pension-income"
requester   = "pension-service"
office_work = "survivor-pension"
info_item   = "resident-tax-income"
providers   = ["@municipalities"]
purpose     = "To work out the survivor's pension from the survivor's income."
basis       = "My Number Act, art. 19 item 8; Annexed Table 2, item 80"

[[allow]]
id            = "tax-investigation"
requester     = "tax-office"
office_work   = "tax-investigation"
info_item     = "resident-record"
providers     = ["city-chiyoda"]
purpose       = "A tax investigation."
basis         = "National Tax Act, art. 74-2"
withhold_days = 30
"""
LABELS = """\
[agencies.portal]
ja = "マイナポータル"
en = "The portal (you)"
[agencies.tax-office]
ja = "税務署"
en = "Tax office"
[agencies.pension-service]
ja = "日本年金機構"
en = "Japan Pension Service"
[agencies.city-chiyoda]
ja = "千代田区"
en = "Chiyoda City"
[office_work.survivor-pension]
ja = "遺族年金の支給"
en = "Survivor pension"
[info_item.resident-tax-income]
ja = "住民税の所得情報"
en = "Resident-tax income"
"""
WAIT = 90.0  # generous: the machine is shared; every wait polls a condition
SHOTS = os.environ.get("SYMBOLSVC_PORTAL_SCREENSHOTS")  # e.g. docs/img: keep the screenshots


def _needs_browser() -> None:
    if not browser.available():
        pytest.fail("needs Debian's chromium and chromium-driver (.ci/run installs them)")


class Person:
    """One subject, linked to the requester, the provider and the portal."""

    def __init__(self, clients: Clients, numbers: NumberSource) -> None:
        self.clients = clients
        self.number = numbers.one()
        self.symbols = {a: clients.agency(a).issue(self.number).symbol
                        for a in (REQUESTER, PROVIDER, INVESTIGATOR)}
        self.portal_symbol = clients.portal().agency.issue(self.number).symbol
        self.exchanges = 0

    def translate(self) -> int:
        self.exchanges += 1
        reply = self.clients.broker().translate(
            REQUESTER, self.symbols[REQUESTER], PROVIDER, OFFICE, ITEM,
            f"portal-{self.portal_symbol[-6:]}-{self.exchanges}")
        return int(reply.record_id)

    def investigate(self) -> int:
        self.exchanges += 1
        reply = self.clients.broker().translate(
            INVESTIGATOR, self.symbols[INVESTIGATOR], PROVIDER, "tax-investigation",
            "resident-record", f"portal-{self.portal_symbol[-6:]}-{self.exchanges}")
        return int(reply.record_id)

    def records(self) -> list[Any]:
        return list(self.clients.portal().all_records(self.portal_symbol))

    def wait_integrated(self, record_id: int) -> None:
        wait_until(lambda: any(r.record_id == record_id and r.integrated
                               for r in self.records()), WAIT, "the record's integration")


@pytest.fixture(scope="module")
def portal_server(deployment_template: Path, session_registries: Registries,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("portal") / "dep"
    session_registries.provision(copy_deployment(deployment_template, directory))
    (directory / "policy.toml").write_text(POLICY)
    (directory / "portal-labels.toml").write_text(LABELS)
    proc = ServerProcess(directory / "config.toml", directory.parent / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def clients(portal_server: ServerProcess) -> Iterator[Clients]:
    c = Clients(Deployment(portal_server.directory), portal_server.address)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def portal(portal_server: ServerProcess) -> Iterator[PortalProcess]:
    directory = portal_server.directory
    config = config_with(directory / "config.toml", {
        "portal": {"target": portal_server.address, "labels": "portal-labels.toml"}}, "portal")
    proc = PortalProcess(config, directory.parent / "portal.log").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    _needs_browser()
    with chromium() as d:
        yield d


@pytest.fixture(scope="module")
def person(clients: Clients, numbers: NumberSource) -> Person:
    p = Person(clients, numbers)
    p.investigate()  # withheld: counted on the page, never shown
    p.wait_integrated(p.translate())
    return p


def _rows(driver: Any) -> list[Any]:
    return driver.find_elements("css selector", "#records-table tbody tr")


def _holdings_supported(clients: Clients, symbol: str) -> bool:
    stub = clients.portal().stub
    try:
        stub.ListHoldings(pb.ListHoldingsRequest(symbol=symbol), timeout=30)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            return False
        raise
    return True


def _shot(driver: Any, name: str, tmp: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 40, 3000))
    out = Path(SHOTS) if SHOTS else tmp
    out.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out / name))
    driver.set_window_size(1280, 1000)
    if SHOTS:  # kept in the repository: a 256-colour palette makes them a third the size
        from PIL import Image

        with Image.open(out / name) as img:
            img.convert("RGB").quantize(256).save(out / name, optimize=True)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_page_lists_the_records_and_holdings_made_by_real_calls(
        portal: PortalProcess, driver: Any, person: Person, clients: Clients, lang: str,
        tmp_path: Path) -> None:
    driver.get(portal.link(person.portal_symbol) + f"?lang={lang}")
    assert driver.find_element("css selector", "html").get_attribute("lang") == lang
    records = person.records()
    rows = _rows(driver)
    assert [int(r.get_attribute("data-record-id")) for r in rows] == \
        sorted((r.record_id for r in records), reverse=True)  # every record, newest first
    translate = next(r for r in rows if r.get_attribute("data-kind") == "translate")
    text = translate.text
    words = {"ja": ("日本年金機構", "千代田区", "遺族年金の支給", "住民税の所得情報"),
             "en": ("Japan Pension Service", "Chiyoda City", "Survivor pension",
                    "Resident-tax income")}[lang]
    for word in words:  # the agencies, office work and item in words, in the language
        assert word in text
    assert "To work out the survivor's pension" in text and "Annexed Table 2" in text
    assert "tax-investigation" not in {r.get_attribute("data-office-work") for r in rows}
    page = clients.portal().stub.ListAccessRecords(
        pb.ListAccessRecordsRequest(symbol=person.portal_symbol), timeout=30)
    assert page.withheld_count == 1
    release = i18n.format_time(lang, page.next_release_time.ToMicroseconds())
    deferred = driver.find_element("id", "deferred").text
    assert "1" in deferred and release in deferred  # how many, and the earliest date
    note = driver.find_element("css selector", ".login-note").text
    assert ("国のログイン" if lang == "ja" else "national login") in note
    vkey = (portal.config.parent / "pki" / "log.vkey").read_text().strip()
    assert driver.find_element("id", "log-vkey").text == vkey
    holdings = driver.find_element("id", "holdings")
    if _holdings_supported(clients, person.portal_symbol):
        agencies = {h.get_attribute("data-agency")
                    for h in holdings.find_elements("css selector", "tbody tr")}
        assert agencies == {REQUESTER, PROVIDER, INVESTIGATOR, "portal"}
    else:  # the server has no ListHoldings yet: the page says so instead of failing
        assert holdings.find_element("css selector", ".unavailable").is_displayed()
    source = driver.page_source
    assert person.number not in source  # no individual number anywhere
    for other in person.symbols.values():  # nor any other agency's symbol for the person
        assert other not in source
    errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []  # the CSP let the page's own script and style run, nothing else
    # verify the newest record in this language too, and keep the page as docs/PORTAL.md shows it
    verdict, text = _verify(driver, int(translate.get_attribute("data-record-id")))
    assert verdict == "ok", text
    _shot(driver, f"portal-{lang}.png", tmp_path)


def test_a_new_translation_appears_without_reload(
        portal: PortalProcess, driver: Any, person: Person) -> None:
    driver.get(portal.link(person.portal_symbol))
    before = {r.get_attribute("data-record-id") for r in _rows(driver)}
    marker = driver.execute_script("document.body.dataset.loadedOnce = 'yes'; return 1;")
    assert marker == 1
    # the page caught up and now listens to the portal's watch: the new record can only
    # reach it through the watch stream, not through the catch-up read
    table = driver.find_element("id", "records-table")
    wait_until(lambda: table.get_attribute("data-live-state") == "ready", WAIT,
               "the page's event stream")
    record_id = person.translate()
    wait_until(lambda: driver.find_elements("id", f"r{record_id}"), WAIT,
               "the new record's row to appear")
    assert driver.execute_script("return document.body.dataset.loadedOnce") == "yes"  # no reload
    after = [r.get_attribute("data-record-id") for r in _rows(driver)]
    assert after[0] == str(record_id) and set(after) >= before
    assert driver.find_element("id", f"r{record_id}").get_attribute("data-kind") == "translate"


def _verify(driver: Any, record_id: int) -> tuple[str, str]:
    row = driver.find_element("id", f"r{record_id}")
    row.find_element("css selector", "button.verify").click()
    wait_until(lambda: row.get_attribute("data-verified"), WAIT, "the verdict")
    return row.get_attribute("data-verified"), row.find_element("css selector", "output").text


def test_verify_succeeds_on_a_real_record(
        portal: PortalProcess, driver: Any, person: Person) -> None:
    record_id = max(r.record_id for r in person.records() if r.integrated)
    driver.get(portal.link(person.portal_symbol) + "?lang=en")
    verdict, text = _verify(driver, record_id)
    assert verdict == "ok", text
    assert re.match(r"Verified: this record is entry \d+ of the \d+ in the log", text)


def test_verify_fails_visibly_when_the_proof_is_tampered_with_in_transit(
        portal: PortalProcess, driver: Any, person: Person) -> None:
    record_id = max(r.record_id for r in person.records() if r.integrated)
    with TamperingProxy(portal.url) as proxy:
        link = portal.link(person.portal_symbol).replace(portal.url, proxy.url)
        driver.get(link + "?lang=en")
        verdict, text = _verify(driver, record_id)
        assert proxy.tampered == 1
    assert verdict == "fail"
    assert text.startswith("Verification FAILED")
    out = driver.find_element("css selector", f"#r{record_id} output")
    assert "fail" in out.get_attribute("class").split() and out.is_displayed()


def test_an_altered_or_expired_link_is_refused(portal: PortalProcess, person: Person) -> None:
    good = portal.link(person.portal_symbol)
    assert get(good)[0] == 200
    token = good.rstrip("/").rsplit("/", 1)[1]
    i = len(token) // 3  # inside the payload: another symbol, the same signature
    altered = good.replace(token, token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:])
    key = load_key(portal.config.parent / "secrets" / "portal-link.key")
    expired = f"{portal.url}/p/{mint(key, person.portal_symbol, 60, now=time.time() - 120)}/"
    forged = f"{portal.url}/p/{mint(b'x' * 32, person.portal_symbol, 600)}/"
    for url in (altered, expired, forged):
        for path in ("", "events", f"proof/{person.records()[0].record_id}"):
            status, _, body = get(url + path)
            assert status == 403, (url, path)
            assert person.portal_symbol.encode() not in body


def test_nothing_about_another_person_is_reachable_by_changing_the_link(
        portal: PortalProcess, person: Person, clients: Clients, numbers: NumberSource) -> None:
    other = Person(clients, numbers)
    theirs = other.translate()
    other.wait_integrated(theirs)
    mine = portal.link(person.portal_symbol)
    # my link, their record id: the server finds no such record of mine
    status, _, body = get(f"{mine}proof/{theirs}")
    assert status == 404 and other.portal_symbol.encode() not in body
    status, _, body = get(f"{mine}proof/{2**63 + 5}")
    assert status == 404
    status, headers, body = get(mine)
    assert status == 200 and other.portal_symbol.encode() not in body
    assert f'id="r{theirs}"'.encode() not in body
    for r in person.records():  # every record of mine is in the HTML itself: reading needs no JS
        assert f'id="r{r.record_id}"'.encode() in body
    # the page is served under a strict policy: no inline script or style, nothing foreign
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    # the portal's own log names nobody: no link, no symbol, no number
    log = portal.log_path.read_text()
    for secret in (mine.split("/p/")[1].strip("/"), person.portal_symbol, person.number,
                   other.portal_symbol, other.number):
        assert secret not in log


def test_live_updates_resume_after_the_server_restarts(
        portal: PortalProcess, portal_server: ServerProcess, driver: Any, person: Person) -> None:
    driver.get(portal.link(person.portal_symbol))
    table = driver.find_element("id", "records-table")
    wait_until(lambda: table.get_attribute("data-live-state") == "ready", WAIT,
               "the page's event stream")
    portal_server.stop()
    portal_server.restart()  # same port: the portal's channel and watch reconnect by themselves

    def broker_back() -> bool:  # the test's own broker channel reconnects too
        try:
            return person.clients.broker().health() == 1
        except CallError:
            return False

    wait_until(broker_back, WAIT, "the broker's channel to reconnect")
    record_id = person.translate()
    wait_until(lambda: driver.find_elements("id", f"r{record_id}"), WAIT,
               "the record made after the restart to appear")
    ids = [r.get_attribute("data-record-id") for r in _rows(driver)]
    assert len(ids) == len(set(ids))  # resumed from the cursor: nothing shown twice
