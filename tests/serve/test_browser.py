"""The served page in headless Chromium (Selenium): upload, boxes, search grid, compare, webcam.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/setup.sh`` installs them on CI as
root) and the shared photos. Screenshots go to ``$DEEPFEVER_SCREENSHOTS`` when it is set (the
README's come from ``DEEPFEVER_SCREENSHOTS=docs/screenshots``), else to a temporary folder.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn, python-multipart) is not installed")
pytest.importorskip("httpx", reason="httpx is needed by the server tests")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (it is in the 'test' extra)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_serve import running_server  # noqa: E402

from deepfever import Extractor  # noqa: E402
from deepfever.io.annotate import emotion_colour  # noqa: E402
from deepfever.serve import ServeSettings  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no headless Chromium and chromedriver on PATH; install them with "
                       "'apt-get install chromium chromium-driver' (scripts/setup.sh does so on CI as root)"),
]
WAIT_S = 60


@pytest.fixture(scope="module")
def site(shared, tmp_path_factory):
    """A server with YuNet and an index of the shared photos; yields its URL and the offline table."""
    from deepfever.applications.search import build_index, save_index

    yunet = str(shared / "models" / "face_detection_yunet_2026may.onnx")
    extractor = Extractor(detector="yunet", detector_options={"model_path": yunet})
    table = extractor.extract([shared / "data" / "photos"])
    index = save_index(build_index(table), tmp_path_factory.mktemp("site") / "photos.index")
    with running_server(ServeSettings(detector="yunet", index=str(index)), extractor) as (url, _):
        yield url, table


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DEEPFEVER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium(*arguments: str):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400",
                     "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", *arguments):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def wait(driver, condition, message: str):
    return WebDriverWait(driver, WAIT_S).until(lambda _: condition(), message=message)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda: "index of" in driver.find_element(By.ID, "server-status").text, "the page to read /v1/health")


def shoot(element, path: Path, width: int = 900) -> None:
    """A small PNG of ``element``: at most ``width`` pixels wide, 256 colours (the README carries these); octree
    quantisation keeps the small emotion swatches their own colours, where median cut merged them away."""
    import io

    image = Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def upload(driver, photo: Path, faces: int) -> list:
    driver.find_element(By.ID, "file-input").send_keys(str(photo))  # the browser reads the file, the server gets bytes
    wait(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, ".face-box")) >= faces, f"{faces} face boxes")
    return driver.find_elements(By.CSS_SELECTOR, ".face-box")


def test_upload_boxes_every_face_with_its_emotion_and_a_click_gives_the_nearest_faces(site, browser, shared, screenshots):
    url, table = site
    photo = shared / "data" / "photos" / "selfie-many-people.jpg"
    expected = table[table["path"] == str(photo)].sort_values("face")
    open_page(browser, url)
    boxes = upload(browser, photo, len(expected))
    assert len(boxes) == len(expected) == 6
    labels = [box.find_element(By.CSS_SELECTOR, ".face-label").text for box in boxes]
    assert labels == [f"{face} {emotion}" for face, emotion in zip(expected["face"], expected["emotion"])]  # numbered as in the table
    borders = [tuple(int(v) for v in re.findall(r"\d+", box.value_of_css_property("border-top-color"))[:3]) for box in boxes]
    assert borders == [emotion_colour(emotion) for emotion in expected["emotion"]]  # the one palette
    assert len(browser.find_elements(By.CSS_SELECTOR, ".face-card .bars li")) == 8 * len(expected)
    shoot(browser.find_element(By.CSS_SELECTOR, ".photo"), screenshots / "upload.png")

    boxes[1].click()
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#search-grid .hit")) == 12, "a grid of 12 nearest faces")
    wait(browser, lambda: browser.execute_script(
        "return [...document.querySelectorAll('#search-grid img')].every(i => i.complete && i.naturalWidth > 0)"), "thumbnails")
    first = browser.find_element(By.CSS_SELECTOR, "#search-grid .hit figcaption").text
    assert first.startswith("1. ") and "similarity 1.00" in first and photo.name in first  # the face itself is in the index
    shoot(browser.find_element(By.ID, "search-panel"), screenshots / "search.png")


def test_two_faces_marked_for_compare_show_their_distance_and_percentile(site, browser, shared):
    url, _ = site
    open_page(browser, url)
    upload(browser, shared / "data" / "photos" / "couple.jpg", 2)
    for toggle in browser.find_elements(By.CSS_SELECTOR, ".compare-toggle"):
        toggle.click()
    result = browser.find_element(By.ID, "compare-result")
    wait(browser, lambda: "expression distance" in result.text, "the comparison")
    assert "of random pairs of reference faces are at least this close" in result.text
    assert "faces of the index" in result.text


def test_keyboard_and_phone_sized_screen(site, browser, shared):
    url, _ = site
    browser.set_window_size(390, 844)
    try:
        open_page(browser, url)
        boxes = upload(browser, shared / "data" / "photos" / "img22.jpg", 1)
        browser.execute_script("arguments[0].focus()", boxes[0])
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#search-grid .hit")) == 12, "the grid, from the keyboard")
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    finally:
        browser.set_window_size(1280, 1400)


def test_api_reference_page_lists_every_route(site, browser):
    url, _ = site
    browser.get(f"{url}/docs")

    def headings() -> list[str]:
        return [element.text for element in browser.find_elements(By.CSS_SELECTOR, "#endpoints h2")]

    wait(browser, lambda: "POST /v1/extract" in headings(), "the reference to render /openapi.json")
    assert {"POST /v1/compare", "POST /v1/odd-one-out", "POST /v1/search", "GET /v1/health"} <= set(headings())
    assert "images: files, required" in browser.find_element(By.ID, "endpoints").text


def test_webcam_with_chromium_fake_camera_reports_no_face(site, browser):
    url, _ = site
    open_page(browser, url)
    browser.find_element(By.ID, "mode-webcam").click()
    browser.find_element(By.ID, "webcam-toggle").click()
    status = browser.find_element(By.ID, "webcam-status")
    wait(browser, lambda: status.text == "No face in view.", "the fake camera's frames to be analysed")


def write_y4m(path: Path, photos: list[Path], frames_each: int, size: tuple[int, int] = (640, 480)) -> Path:
    """A Y4M video (Chromium's fake-camera file format): each photo letterboxed, shown for ``frames_each`` frames."""
    width, height = size
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for photo in photos:
            image = Image.open(photo).convert("RGB")
            image.thumbnail(size)
            canvas = Image.new("RGB", size, (40, 40, 40))
            canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
            y, u, v = canvas.convert("YCbCr").split()
            planes = [np.asarray(y), np.asarray(u.resize((width // 2, height // 2), Image.BOX)),
                      np.asarray(v.resize((width // 2, height // 2), Image.BOX))]
            frame = b"FRAME\n" + b"".join(plane.tobytes() for plane in planes)
            handle.write(frame * frames_each)
    return path


def test_webcam_timeline_follows_a_face_on_a_fake_camera_video(site, shared, screenshots, tmp_path):
    url, table = site
    photos = [shared / "data" / "photos" / name for name in ("img22.jpg", "img5.jpg")]  # happy, then neutral
    video = write_y4m(tmp_path / "faces.y4m", photos, frames_each=15)
    driver = chromium(f"--use-file-for-fake-video-capture={video}")
    try:
        open_page(driver, url)
        driver.find_element(By.ID, "mode-webcam").click()
        Select(driver.find_element(By.ID, "webcam-interval")).select_by_value("250")
        driver.find_element(By.ID, "webcam-toggle").click()
        status = driver.find_element(By.ID, "webcam-status")
        seen: set[str] = set()

        def both_expressions() -> bool:
            seen.add(status.text)
            return any("happy" in text for text in seen) and any("neutral" in text for text in seen)

        wait(driver, both_expressions, "the timeline to see the happy and the neutral face")
        wait(driver, lambda: driver.execute_script("return state.webcam.samples.filter(Boolean).length") >= 30,
             "30 samples with a face on the timeline")
        shoot(driver.find_element(By.ID, "webcam-panel"), screenshots / "webcam.png")
    finally:
        driver.quit()
