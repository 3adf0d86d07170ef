"""The demo page of the deployment lesson, in a real browser.

Starts ``python -m course_lib serve --model <fine-tuned model> --port <free port>`` (through
``course_lib.serving.processes.ServerProcess``), loads the page, types a tweet into ``#text``,
clicks ``#predict``, and checks that one probability bar per label appears
(``#results .prob-bar[data-label]``) with probabilities that make sense: each in [0, 1],
summing to 1, the highlighted bar the most likely one. Screenshot:
``build/screenshots/demo_page.png``.
"""

from __future__ import annotations

import json
import re

import pytest
from browser_helpers import SCREENSHOTS_DIR

from course_lib.serving.processes import ServerProcess

TEXT = "The flight was delayed three hours and nobody told us anything. Never again."
BAR = "#results .prob-bar[data-label]"
# The session's fine-tuned model (root conftest.py: trained once, whichever test needs it first);
# the server exports it to ONNX on first use.
SERVER_START_TIMEOUT = 300


@pytest.fixture(scope="module")
def demo_server(finetuned_model_folder, tmp_path_factory, browser):  # browser: fail fast
    # no token: the page must work without one here (ServerProcess drops COURSE_API_TOKEN)
    server = ServerProcess(
        finetuned_model_folder,
        startup_timeout=SERVER_START_TIMEOUT,
        log_path=tmp_path_factory.mktemp("demo-server") / "serve.log",
    )
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
    left = server.leftovers()
    assert not left, f"the demo server left processes running after it was stopped: {left}"


def _probability(text: str) -> float:
    """The probability a bar shows: its last number, as a fraction (``0.731`` or ``73.1%``)."""
    matches = re.findall(r"(\d+(?:\.\d+)?)\s*(%?)", text)
    assert matches, f"no probability in the bar text {text!r}"
    number, percent = matches[-1]
    return float(number) / (100 if percent else 1)


@pytest.mark.timeout(SERVER_START_TIMEOUT + 900)  # may include training the model once
def test_demo_page_shows_probabilities(demo_server, fine_tuned_model, browser_page):
    labels = json.loads((fine_tuned_model / "config.json").read_text())["id2label"].values()
    page = browser_page.page
    page.goto(demo_server + "/")
    page.fill("#text", TEXT)
    page.click("#predict")
    page.wait_for_selector(BAR, timeout=60_000)
    page.wait_for_timeout(200)  # all bars are added at once; let the page paint them

    bars = page.eval_on_selector_all(
        BAR,
        "nodes => nodes.map(n => ({label: n.dataset.label, text: n.textContent,"
        " top: n.classList.contains('top'), visible: n.getBoundingClientRect().height > 0}))",
    )
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS_DIR / "demo_page.png"
    page.screenshot(path=str(screenshot), full_page=True)

    shown = [bar["label"] for bar in bars]
    assert sorted(shown) == sorted(labels), (
        f"expected one bar per label {sorted(labels)}, the page shows {shown}; "
        f"screenshot: {screenshot}"
    )
    assert all(bar["visible"] for bar in bars), f"some bars are not visible: {bars}"
    probabilities = {
        bar["label"]: _probability(bar["text"].replace(bar["label"], "", 1)) for bar in bars
    }
    assert all(0.0 <= p <= 1.0 for p in probabilities.values()), probabilities
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=0.005 * len(probabilities)), (
        probabilities
    )
    top = [bar["label"] for bar in bars if bar["top"]]
    assert len(top) == 1 and probabilities[top[0]] == max(probabilities.values()), (
        f"the highlighted bar {top} should be the most likely label: {probabilities}"
    )
    assert not browser_page.page_errors, (
        f"JavaScript errors on the demo page: {browser_page.page_errors}"
    )
    assert not browser_page.external_requests, (
        f"the demo page tried to reach the internet (it must work offline): "
        f"{browser_page.external_requests}"
    )
