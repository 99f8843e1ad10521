"""The rating page in a real browser: Debian's chromium + chromium-driver, headless, through selenium.

Missing chromium is a failure, not a skip: `bash scripts/install.sh --test` installs it.
"""

import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from hyperfit_rate.app import create_app
from hyperfit_rate.store import Store
from hyperfit_rate.study import Study

from .conftest import SCRIPT, live_server

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1200,900"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, DRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `bash scripts/install.sh --test` (Debian's chromium and "
                    "chromium-driver)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def shown_pair(driver) -> str:
    return driver.find_element(By.ID, "app").get_attribute("data-pair") or ""


def wait_for_new_pair(driver, previous: str | None) -> str:
    """The next pair's id, once it is shown and the buttons take votes again."""
    def ready(d):
        pair = shown_pair(d)
        done = d.find_element(By.ID, "done").is_displayed()
        if done:
            return "done"
        return pair if pair and pair != previous and d.find_element(By.ID, "vote-left").is_enabled() else False
    return WebDriverWait(driver, 15, poll_frequency=0.05).until(ready)


def progress(driver) -> str:
    return driver.find_element(By.ID, "progress-text").text


def hostile_text_is_inert(driver) -> bool:
    """Whether the shown pair holds the <script> continuation; asserts that it stayed text."""
    found = False
    for slot in ("left", "right"):
        box = driver.find_element(By.ID, slot)
        if box.get_property("textContent") == SCRIPT:
            found = True
            assert box.find_elements(By.CSS_SELECTOR, "*") == []  # no element was parsed from it
            assert "<script>" in box.text
    assert driver.execute_script("return window.__pwned === undefined")
    return found


def test_rate_by_mouse_and_keyboard_reload_and_resume(browser, text_study):
    study = Study(text_study)
    seen_script = False
    with live_server(create_app(text_study)) as base:
        browser.get(f"{base}/")
        browser.find_element(By.ID, "name").send_keys("ann")
        browser.find_element(By.CSS_SELECTOR, "#join button[type=submit]").click()
        WebDriverWait(browser, 15, poll_frequency=0.05).until(lambda d: "/r/" in d.current_url)
        pair, voted = wait_for_new_pair(browser, None), []
        for button, answer in (("vote-left", "left"), ("vote-right", "right"), ("vote-equal", "equal")):
            seen_script |= hostile_text_is_inert(browser)
            browser.find_element(By.ID, button).click()
            voted.append((pair, answer))
            pair = wait_for_new_pair(browser, pair)
        for key, answer in (("1", "left"), ("b", "right"), ("3", "equal")):
            seen_script |= hostile_text_is_inert(browser)
            ActionChains(browser).send_keys(key).perform()
            voted.append((pair, answer))
            pair = wait_for_new_pair(browser, pair)
        assert progress(browser) == "6 of 15 rated"

        browser.refresh()  # stop and come back: the same place
        assert wait_for_new_pair(browser, None) == pair == study.order_for("ann")[6]
        assert progress(browser) == "6 of 15 rated"
        assert [(v["pair_id"], v["answer"]) for v in Store.open(text_study).votes()] == voted

        for step in range(9):  # the rest by keyboard
            seen_script |= hostile_text_is_inert(browser)
            ActionChains(browser).send_keys("a").perform()
            voted.append((pair, "left"))
            pair = wait_for_new_pair(browser, pair)
        assert pair == "done" and seen_script
        assert browser.find_element(By.ID, "done").is_displayed() and progress(browser) == "15 of 15 rated"
    votes = Store.open(text_study).votes()
    assert [(v["pair_id"], v["answer"]) for v in votes] == voted and {v["rater"] for v in votes} == {"ann"}


def test_image_pairs_show_their_images(browser, image_study):
    with live_server(create_app(image_study)) as base:
        token = Store.open(image_study).add_rater("rater-01", invited=True).token
        browser.get(f"{base}/r/{token}")
        wait_for_new_pair(browser, None)
        WebDriverWait(browser, 15, poll_frequency=0.05).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.content img')].every(i => i.complete && i.naturalWidth === 8)"))
        assert len(browser.find_elements(By.CSS_SELECTOR, ".content img")) == 3
        ActionChains(browser).send_keys("2").perform()
        WebDriverWait(browser, 15, poll_frequency=0.05).until(lambda d: progress(d) == "1 of 10 rated")
    assert [v["answer"] for v in Store.open(image_study).votes()] == ["right"]


class ImageGate:
    """WSGI middleware around the app: holds every image until `opened` is set; answers 404 for `failing` ids."""

    def __init__(self, app):
        self.app, self.opened, self.failing = app, threading.Event(), set()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/img/"):
            if path[len("/img/"):] in self.failing:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"gone"]
            self.opened.wait(20)
        return self.app(environ, start_response)


def buttons_enabled(driver) -> list[bool]:
    return [driver.find_element(By.ID, b).is_enabled() for b in ("vote-left", "vote-equal", "vote-right")]


def test_votes_wait_until_the_images_have_loaded(browser, image_study):
    """A vote over images the rater has not seen would be stored as a real preference: the buttons and keys stay
    off until both sides (and the context) have loaded, and for good when one of them fails to."""
    gate, store = ImageGate(create_app(image_study)), Store.open(image_study)
    rater = store.add_rater("rater-02", invited=True)
    study = Study(image_study)
    order = study.order_for(rater.name)
    try:
        with live_server(gate) as base:
            browser.get(f"{base}/r/{rater.token}")
            WebDriverWait(browser, 15, poll_frequency=0.05).until(lambda d: shown_pair(d) == order[0])
            assert buttons_enabled(browser) == [False, False, False]
            ActionChains(browser).send_keys("1").perform()
            browser.execute_script("document.getElementById('vote-right').click()")
            time.sleep(0.5)
            assert store.votes() == [] and "loading" in browser.find_element(By.ID, "status").text
            gate.opened.set()  # the images arrive: now the pair can be rated
            WebDriverWait(browser, 15, poll_frequency=0.05).until(lambda d: all(buttons_enabled(d)))
            assert browser.execute_script(
                "return [...document.querySelectorAll('.content img')].every(i => i.complete && i.naturalWidth)")

            gate.failing.add(study.shown(rater.name, order[1])["right"])  # the next pair's B never loads
            ActionChains(browser).send_keys("1").perform()
            WebDriverWait(browser, 15, poll_frequency=0.05).until(
                lambda d: shown_pair(d) == order[1] and "did not load" in d.find_element(By.ID, "status").text)
            ActionChains(browser).send_keys("2").perform()
            time.sleep(0.5)
            assert buttons_enabled(browser) == [False, False, False]
    finally:
        gate.opened.set()
    assert [(v["pair_id"], v["answer"]) for v in store.votes()] == [(order[0], "left")]
