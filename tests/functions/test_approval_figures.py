"""The approval page draws the QA report: the confusion matrix as a heat map (classification) and the
residuals against the predictions (regression), as inline SVG with no script and nothing fetched.
The page a reviewer opens is rendered in a real browser (Debian's headless Chromium, driven by
Selenium through chromedriver; `make setup` installs both) and the figure must be there, of a
readable size, with its labels inside it in a readable font, and drawn (not blank)."""
from __future__ import annotations

import io
import random
import re
import shutil

import pytest
from approval_support import (  # noqa: F401 (fixtures)
    API_BASE_URL,
    api,
    approval_api,
    approval_event,
    emails,
    request_approval,
    world,
)
from test_fn_approval_by_type import BINARY_REPORT, REGRESSION_REPORT, send

from pipeline_common.figures import confusion_svg, residual_svg

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MULTICLASS_REPORT = {
    **BINARY_REPORT, "problem_type": "multiclass", "dataset": "car", "label_name": "class",
    "gate": {"metric": "accuracy", "threshold": 0.9, "threshold_source": "spec", "higher_is_better": True,
             "value": 0.96, "passed": True},
    "labels": ["acc", "good", "unacc", "vgood"],
    "confusion_matrix": [[55, 2, 1, 0], [1, 9, 0, 0], [3, 0, 179, 0], [0, 1, 0, 9]],
    "per_class": {}, "roc_auc": None, "positive_label": None, "binary_threshold": None,
}


def regression_report() -> dict:
    rng = random.Random(5)
    points = [[round(p, 2), round(rng.gauss(0, 20 + p / 10), 2)] for p in (rng.uniform(25, 340) for _ in range(200))]
    return {**REGRESSION_REPORT, "residual_points": points}


# ---------------------------------------------------------------- the SVG itself

def test_the_heat_map_shades_by_the_true_classs_share_and_escapes_labels():
    svg = confusion_svg(["<b>", "ok"], [[9, 1], [0, 10]])
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "<script" not in svg and "href" not in svg
    fills = re.findall(r'<rect [^>]*fill="(rgb\([^)]*\))"', svg)
    assert len(fills) == 4
    # 9 of 10 and 10 of 10 are dark, 1 of 10 light, 0 white.
    assert fills[3] == "rgb(31,95,168)" and fills[2] == "rgb(255,255,255)"
    assert [int(v) for v in re.findall(r'fill="#[0-9a-f]{6}">(\d+)</text>', svg)] == [9, 1, 0, 10]
    assert confusion_svg([], []) == "" and confusion_svg(["a"], [[1], [2]]) == ""


def test_the_residual_plot_draws_each_point_and_the_zero_line():
    points = regression_report()["residual_points"]
    svg = residual_svg(points)
    assert svg.count("<circle ") == len(points) and 'stroke="#c0392b"' in svg
    assert residual_svg([]) == "" and residual_svg([[1.0, float("nan")]]) == ""


def test_the_email_has_no_picture_and_the_page_has_each_kind(request_approval, world, api):
    for report, kind in ((BINARY_REPORT, "confusion"), (regression_report(), "residuals")):
        sent = send(world, request_approval, report)
        assert "<svg" not in sent["email"]["Message"]
        _, page, _ = api("GET", sent["reference"])
        assert page.count(f'class="figure {kind}"') == 1 and "<script" not in page


# ---------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (Debian's chromium and chromium-driver): run make setup")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _paeth(left: int, up: int, corner: int) -> int:
    guess = left + up - corner
    to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    return up if to_up <= to_corner else corner


def drawn(png: bytes) -> tuple[int, float]:
    """(distinct colours, share of pixels that are not white) of a PNG screenshot (8-bit RGB or RGBA)."""
    import struct
    import zlib

    data = io.BytesIO(png)
    assert data.read(8) == b"\x89PNG\r\n\x1a\n"
    compressed, width, height, channels = b"", 0, 0, 0
    while True:
        length, kind = struct.unpack(">I4s", data.read(8))
        body = data.read(length)
        data.read(4)  # CRC
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(compressed)
    stride = width * channels
    previous = bytearray(stride)
    colours, inked, position = set(), 0, 0
    for _ in range(height):
        kind, line = raw[position], bytearray(raw[position + 1:position + 1 + stride])
        position += 1 + stride
        for i in range(stride):  # undo the row's filter (PNG spec, 9.2)
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            line[i] = (line[i] + (0, left, up, (left + up) // 2, _paeth(left, up, corner))[kind]) & 255
        previous = line
        for x in range(0, stride, channels):
            pixel = bytes(line[x:x + 3])
            colours.add(pixel)
            inked += pixel != b"\xff\xff\xff"
    return len(colours), inked / (width * height)


@pytest.mark.parametrize("report, kind", [(BINARY_REPORT, "confusion"), (MULTICLASS_REPORT, "confusion"),
                                          (regression_report(), "residuals")],
                         ids=["binary", "multiclass", "regression"])
def test_the_saved_page_shows_a_readable_figure_in_chromium(browser, request_approval, world, api, tmp_path, report,
                                                           kind):
    from selenium.webdriver.common.by import By

    sent = send(world, request_approval, report)
    status, page, _ = api("GET", sent["reference"])
    assert status == 200
    saved = tmp_path / "approval-page.html"  # as local mode saves it: one file, nothing fetched
    saved.write_text(page, encoding="utf-8")
    browser.get(saved.as_uri())
    [figure] = browser.find_elements(By.CSS_SELECTOR, f"svg.figure.{kind}")
    assert figure.is_displayed()
    box = figure.rect
    assert box["width"] >= 150 and box["height"] >= 150
    labels = figure.find_elements(By.CSS_SELECTOR, "text")
    assert labels
    for label in labels:
        assert float(label.value_of_css_property("font-size").removesuffix("px")) >= 12
        inner = label.rect
        assert box["x"] - 1 <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"] + 1, label.text
        assert box["y"] - 1 <= inner["y"] and inner["y"] + inner["height"] <= box["y"] + box["height"] + 1, label.text
    shown = {label.text for label in labels}
    if kind == "confusion":
        assert set(report["labels"]) <= shown
        assert {str(n) for row in report["confusion_matrix"] for n in row} <= shown
    else:
        assert "predicted" in shown
    colours, inked = drawn(figure.screenshot_as_png)
    assert colours >= 3 and inked >= 0.05, (colours, inked)
