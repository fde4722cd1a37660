"""End to end in headless Chromium: the built site, served on 127.0.0.1 by a plain http.server, as a
reader uses it: the overview table and a card render, sorting and filtering work, the chart links to
the cards, the theme's search finds a model ID, and no request leaves the machine.

Needs Debian's `chromium` and `chromium-driver` (scripts/test.sh installs them when run as root) and
selenium. Without them the test is skipped, except in CI (`CI` set), where it must run.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sitebuild import REPO

from resfam.cards import parse_card

pytestmark = pytest.mark.slow  # a real Chromium on the built site

CHROMEDRIVER = "/usr/bin/chromedriver"
CARDS = {path.stem: [m.name for m in parse_card(path).models]
         for path in sorted((REPO / "templates" / "models").glob("*.md"))}
ALL_MODELS = [name for names in CARDS.values() for name in names]


def chromium() -> str:
    """The Chromium binary, or a skip (a failure in CI) saying what is missing."""
    missing = []
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        missing.append("chromium")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append(f"chromium-driver ({CHROMEDRIVER})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        reason = f"browser test needs {', '.join(missing)}; scripts/test.sh installs them"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the browser test must run)", pytrace=False)
        pytest.skip(reason)
    return binary


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def base_url(request):
    chromium()  # no build when the browser is missing anyway
    built = request.getfixturevalue("repository_site")
    assert built.returncode == 0, built.output
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(built.site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(base_url, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request, for offline_check
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout=20):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # pages re-render (search results update at every keystroke): a stale element means "not yet"
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def requested_urls(driver) -> list[str]:
    """The URLs the browser requested since the last call (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(driver, name: str) -> None:
    """Saved when RESFAM_SCREENSHOTS names a folder: for looking at the pages, not for asserting."""
    folder = os.environ.get("RESFAM_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def column(driver, index: int) -> list[str]:
    return [row.find_elements("css selector", "td")[index].text
            for row in css(driver, ".resfam-sortable tbody tr") if row.is_displayed()]


def test_overview_table_sorts_and_filters(browser, base_url):
    browser.get(base_url + "models/")
    wait_for(browser, lambda d: css(d, ".resfam-filter input"))
    rows = css(browser, ".resfam-sortable tbody tr")
    assert sorted(row.find_elements("css selector", "td")[0].text for row in rows) == sorted(ALL_MODELS)
    screenshot(browser, "overview")

    headers = {header.text.strip(): header for header in css(browser, ".resfam-sortable thead th button")}
    headers["Params (M)"].click()
    params = [float(text) for text in column(browser, 2)]
    assert params == sorted(params) and params[0] < params[-1]
    headers["Params (M)"].click()
    assert [float(text) for text in column(browser, 2)] == sorted(params, reverse=True)
    headers["Model"].click()
    assert column(browser, 0) == sorted(ALL_MODELS)

    search = css(browser, ".resfam-filter input")[0]
    search.send_keys("resnest")
    wait_for(browser, lambda d: len(column(d, 0)) < len(ALL_MODELS))
    assert column(browser, 0) == sorted(CARDS["resnest"])
    assert css(browser, ".resfam-filter output")[0].text == f"{len(CARDS['resnest'])} of {len(ALL_MODELS)} models"
    search.clear()
    search.send_keys("no-such-model")
    wait_for(browser, lambda d: not column(d, 0))


def test_chart_points_open_their_cards(browser, base_url):
    browser.get(base_url + "models/")
    points = wait_for(browser, lambda d: css(d, "svg.resfam-chart a.resfam-chart__point"))
    assert sorted(point.get_attribute("data-model") for point in points) == sorted(ALL_MODELS)
    point = next(p for p in points if p.get_attribute("data-model") == "resnet50d")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    point.find_element("css selector", "circle").click()
    wait_for(browser, lambda d: urlsplit(d.current_url).path.endswith("/models/resnet-d/"))
    assert urlsplit(browser.current_url).fragment == "resnet50d"


def test_card_renders_with_verified_tables(browser, base_url):
    browser.get(base_url + "models/resnet-d/")
    wait_for(browser, lambda d: css(d, "h1"))
    assert css(browser, "h1")[0].text == "ResNet-D"
    for name in CARDS["resnet-d"]:
        assert css(browser, f"h3[id='{name}']")[0].is_displayed()
    marks = [mark.text for mark in css(browser, "a.resfam-verified") if mark.is_displayed()]
    # per model: five figures in the comparison table (a bare mark), six more figures in its details
    # (the configuration, the architecture tags and the code), and its two features per stage, measured
    models = len(CARDS["resnet-d"])
    assert sorted(marks) == sorted(["✓"] * 5 * models + ["✓ verified"] * 6 * models + ["✓ measured"] * 2 * models)
    assert not css(browser, ".admonition")
    screenshot(browser, "card-resnet-d")


@pytest.mark.parametrize("width", [1400, 800])
def test_the_comparison_tables_fit_the_page_and_lead_to_every_model(browser, base_url, width):
    """At laptop width and at 800 px, no card's comparison table and not the overview's scrolls sideways,
    and every model of a card's table opens its details."""
    browser.set_window_size(width, 1000)
    try:
        for family, names in CARDS.items():
            browser.get(base_url + f"models/{family}/")
            table = wait_for(browser, lambda d: css(d, ".resfam-compare table"))[0]
            assert not horizontal_scroll(browser, table), (family, width)
            links = {link.text.replace("\n", ""): link for link in css(browser, ".resfam-compare td:first-child a")}
            assert sorted(links) == sorted(names)
            for name in (names[0], names[-1]):  # the first and the last: the page scrolls either way
                browser.execute_script("window.scrollTo(0, 0)")
                links[name].click()
                wait_for(browser, lambda d, name=name: urlsplit(d.current_url).fragment == name)
                heading = css(browser, f"h3[id='{name}']")[0]
                top = browser.execute_script("return arguments[0].getBoundingClientRect().top", heading)
                assert 0 <= top < 300, (family, name, top)
            screenshot(browser, f"card-{family}-{width}")
        browser.get(base_url + "models/")
        table = wait_for(browser, lambda d: css(d, ".resfam-sortable table"))[0]
        assert not horizontal_scroll(browser, table), ("overview", width)
        screenshot(browser, f"overview-{width}")
    finally:
        browser.set_window_size(1400, 1000)


def horizontal_scroll(browser, table) -> bool:
    """Whether the table, in the box the theme wraps it in, or the page itself, scrolls sideways."""
    return browser.execute_script(
        "const box = arguments[0].closest('.md-typeset__scrollwrap') || arguments[0].parentElement;"
        "const page = document.documentElement;"
        "return box.scrollWidth > box.clientWidth || page.scrollWidth > page.clientWidth;", table)


def test_search_finds_a_model_id(browser, base_url):
    from selenium.webdriver.common.keys import Keys

    browser.get(base_url)
    wait_for(browser, lambda d: css(d, "input.md-search__input"))
    query = css(browser, "input.md-search__input")[0]
    query.click()  # the reader's way in: the search box in the header
    query.send_keys("resnest50d_4s2x40d")
    found = wait_for(browser, lambda d: [r.get_attribute("href") for r in css(d, ".md-search-result__item a")
                                         if r.is_displayed() and "/models/resnest/" in r.get_attribute("href")],
                     timeout=30)
    assert any(urlsplit(href).fragment == "resnest50d_4s2x40d" for href in found), found
    screenshot(browser, "search")
    query.send_keys(Keys.ESCAPE)


def test_no_request_leaves_the_machine(browser, base_url):
    urls = requested_urls(browser)  # what the earlier tests requested counts too
    for page in ("", "models/", "models/resnet/", "measurement/", "adding-a-model/"):
        browser.get(base_url + page)
        wait_for(browser, lambda d: d.execute_script("return document.readyState") == "complete")
    urls += requested_urls(browser)
    assert any(url.endswith("/assets/resfam.js") for url in urls)
    # the browser's own chrome:// pages aside, every request goes to the site's server
    foreign = [url for url in urls if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp")
               and not url.startswith(base_url)]
    assert foreign == []
