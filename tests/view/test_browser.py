"""The page in a real browser: Debian's Chromium, headless, driven by Selenium through chromedriver.

One browser for the module. It loads the page of a real server, waits for the thumbnails to
decode, filters by class, relabels a sample by keyboard, draws and deletes a box on a detection
dataset, saves a new version and reads it back from disk; the browser's console must stay free of
errors. A screenshot of the grid with its boxes is kept under the test's temporary folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.labeling.edits import read_edits
from tests.helpers import make_classification_dataset, make_detection_dataset
from tests.view.conftest import serving, session_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
                                reason="needs Debian's chromium and chromedriver (`make browser` installs them)")
WAIT = 30  # seconds: an upper bound for a loaded machine, never a timing assertion


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, predicate, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(lambda d: predicate(d), message)


def click_fresh(driver, css: str, index: int = 0) -> None:
    """Click the `index`-th element matching `css`, found again if the page redrew it in between."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    def attempt(d) -> bool:
        try:
            ActionChains(d).move_to_element(d.find_elements(By.CSS_SELECTOR, css)[index]).click().perform()
        except StaleElementReferenceException:
            return False
        return True

    wait(driver, attempt, f"{css} [{index}] could not be clicked")


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"), "the page never got ready")
    wait(driver, lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('#grid img')];"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"), "thumbnails did not decode")


def captions(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#grid .caption b')].map(b => b.textContent)")


def save_as(driver, name: str) -> None:
    field = driver.find_element("id", "save-name")
    field.clear()
    field.send_keys(name)
    driver.find_element("id", "save").click()
    wait(driver, lambda d: d.execute_script("return document.querySelectorAll('#saved li').length > 0"),
         "Save as did not report a new version")


def test_classification_page_filter_relabel_and_save(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    data = make_classification_dataset(tmp_path / "digits", classes=3, per_class=6)
    session = session_for(data, tmp_path)
    with serving(session) as served:
        open_page(browser, served.url)
        assert len(captions(browser)) == 18
        Select(browser.find_element(By.ID, "f-label")).select_by_value("1")
        wait(browser, lambda d: captions(d) == ["1"] * 6, "the class filter did not apply")
        assert browser.find_element(By.ID, "total").text.startswith("6 ")
        browser.find_elements(By.CSS_SELECTOR, "#grid .card")[0].click()
        grid = browser.find_element(By.ID, "grid")
        grid.send_keys(Keys.ARROW_RIGHT)  # the second sample: 1-001
        grid.send_keys("2")  # its class becomes "2" (the class named by the key)
        wait(browser, lambda d: captions(d)[1] == "2", "the class key did not relabel the sample")
        grid.send_keys("x")  # the third sample (selection moved on) marked for removal
        wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#grid .card.removed').length === 1"),
             "x did not mark the sample")
        grid.send_keys("u")  # undo the removal
        wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#grid .card.removed').length === 0"),
             "undo did not take the removal back")
        wait(browser, lambda d: session.edits_path.is_file() and len(read_edits(session.edits_path)) == 3,
             "the edits did not reach the edits file")  # (the page shows an edit before the server has it)
        edits = read_edits(session.edits_path)
        assert [(e.id, e.label) for e in edits if e.remove is None] == [("1-001", "2")]
        assert [e.remove for e in edits if e.remove is not None] == [True, False]
        save_as(browser, "digits-v2")
        assert console_errors(browser) == []
    saved = load_dataset(tmp_path / "digits-v2")
    relabelled = {s.id: s for s in saved.samples}["1-001"]
    assert relabelled.label == "2" and relabelled.meta["relabel"][-1]["new"] == "2"
    assert len(saved.samples) == 18
    assert saved.info.lineage[-1]["stage"] == "relabel"
    assert {s.id: s for s in load_dataset(data).samples}["1-001"].label == "1"  # the source is untouched


def test_detection_draw_and_delete_a_box(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = make_detection_dataset(tmp_path / "shapes", n=6, size=(96, 72))
    session = session_for(data, tmp_path)
    with serving(session) as served:
        open_page(browser, served.url)
        boxes = browser.execute_script("return document.querySelectorAll('#grid rect.box').length")
        assert boxes == 12  # two per image, drawn over the thumbnails
        browser.find_element(By.ID, "grid").screenshot(str(tmp_path / "grid.png"))
        assert (tmp_path / "grid.png").stat().st_size > 1000
        grid = browser.find_element(By.ID, "grid")
        browser.find_elements(By.CSS_SELECTOR, "#grid .card")[0].click()
        grid.send_keys(Keys.ENTER)
        wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#editor rect.box').length === 2"),
             "the sample panel did not open")
        editor = browser.find_element(By.ID, "editor")
        size = editor.size
        # Drag from 5% to 30% of the stage: a new box of the current class (the first, "red").
        ActionChains(browser).move_to_element_with_offset(editor, int(-size["width"] * 0.45), int(-size["height"] * 0.45)) \
            .click_and_hold().move_by_offset(int(size["width"] * 0.25), int(size["height"] * 0.25)).release().perform()
        wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#editor rect.box').length === 3"),
             "dragging did not draw a box")
        wait(browser, lambda d: "img-000" in session.pending, "the drawn box did not reach the server")
        drawn = session.pending["img-000"].objects
        assert len(drawn) == 3 and drawn[-1]["label"] == "red"
        # The new box is selected: "2" makes it green, Delete removes the first box.
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("2")
        wait(browser, lambda d: session.pending["img-000"].objects[-1]["label"] == "green", "the key did not set the class")
        click_fresh(browser, "#editor g.obj rect.box")  # the panel may redraw as the class change comes back
        body.send_keys(Keys.DELETE)
        wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#editor rect.box').length === 2"),
             "Delete did not remove the box")
        # By keyboard alone: b adds a box in the middle, arrows move it, Shift+arrows size it.
        body.send_keys("b")
        wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#editor rect.box').length === 3"),
             "b did not add a box")
        body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.SHIFT + Keys.ARROW_DOWN)
        wait(browser, lambda d: session.pending["img-000"].objects[-1]["bbox"] == [27.8, 18.0, 75.8, 55.4],
             "the arrows did not move and size the box")
        save_as(browser, "shapes-v2")
        assert console_errors(browser) == []
    saved = {s.id: s for s in load_dataset(tmp_path / "shapes-v2").samples}
    source = {s.id: s for s in load_dataset(data).samples}
    objs = saved["img-000"].objects
    assert [o.label for o in objs] == [source["img-000"].objects[1].label, "green", "red"]
    assert objs[0].bbox == source["img-000"].objects[1].bbox  # the first box went, the second stayed
    assert objs[2].bbox == [27.8, 18.0, 75.8, 55.4]
    assert saved["img-001"].objects == source["img-001"].objects
