"""Every notebook of the course, as a participant sees it in JupyterLab in a real browser.

nbval proves that each notebook runs; it cannot see a widget that fails to display. Here each
notebook is opened in JupyterLab in Chromium and its stored outputs must render. Notebooks with
controls a learner drives (sliders, text boxes, drop-downs, buttons) run, on a kernel in the
browser, only the cells their widgets need (tagged ``widget``; nbval already ran them all), on
the models the session already trained (``COURSE_REUSE_MODELS=1``, the fixtures of the root
conftest.py). Then every control is driven in turn, and each must change an output. Throughout:
no cell shows an error, every widget output shows a widget (and never "Error displaying
widget"), every image loads, the page asked nothing of the internet, and the notebook file on
disk is unchanged. A screenshot of each notebook is saved in ``build/screenshots/<name>.png``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import pytest
from browser_helpers import (
    JS_COLLAPSE_SIDEBARS,
    JS_KERNEL_IDLE,
    JS_KERNEL_STATUS,
    JS_NOTEBOOK_READY,
    JS_REPORT,
    JS_RUN_FINISHED,
    JS_SETTLED,
    JS_SHUTDOWN_KERNELS,
    JS_START_TAGGED_RUN,
    NOTEBOOKS_DIR,
    REPO_ROOT,
    SCREENSHOTS_DIR,
    WIDGET_TAG,
    interactive_widget_models,
    notebook_has_widgets,
    notebook_url,
    screenshot_whole_notebook,
    tagged_cells,
)

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
# The trained model a notebook's widget needs, by the session fixture that provides it.
MODEL_FIXTURES = {
    "05_fine_tuning": "finetuned_model_folder",
    "09_text_generation": "gpt_model_folder",
}

# Bounded but generous, on 2 CPU cores shared with the other tests.
OPEN_TIMEOUT_MS = 120_000  # JupyterLab loads, the notebook opens, the kernel starts
RUN_TIMEOUT_MS = 300_000  # the tagged cells of one notebook
SETTLE_TIMEOUT_MS = 60_000  # widgets and images render after the last cell ran
DRIVE_TIMEOUT_MS = 60_000  # a control changes an output (a plot redrawn, text generated)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _describe(report: dict, recorder) -> str:
    lines = [f"page report: {json.dumps(report, indent=1)[:4000]}"]
    if recorder.page_errors:
        lines.append("uncaught page errors (first 10): " + " || ".join(recorder.page_errors[:10]))
    if recorder.console_errors:
        lines.append(
            "browser console errors (first 10): " + " || ".join(recorder.console_errors[:10])
        )
    return "\n".join(lines)


def _wait(page, condition: str, timeout_ms: int, what: str, screenshot, relative: str) -> None:
    """Wait for a JavaScript condition; on timeout, save a screenshot and fail saying what hung."""
    try:
        page.wait_for_function(condition, timeout=timeout_ms, polling=500)
    except Exception as error:
        kernel = None
        with contextlib.suppress(Exception):
            kernel = page.evaluate(JS_KERNEL_STATUS)
        with contextlib.suppress(Exception):
            screenshot_whole_notebook(page, screenshot)
        pytest.fail(
            f"{relative}: timed out after {timeout_ms // 1000} s waiting for {what} "
            f"({type(error).__name__}; kernel status: {kernel}); screenshot: {screenshot}",
            pytrace=False,
        )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_in_jupyterlab(notebook, jupyterlab, browser_page, request):
    before = _digest(notebook)
    has_widgets = notebook_has_widgets(notebook)
    run_all = bool(interactive_widget_models(notebook))  # it has controls: run and drive them
    tagged = tagged_cells(notebook)
    if run_all:
        assert tagged, f"{notebook.name} has controls but no cell tagged {WIDGET_TAG!r}"
        if notebook.stem in MODEL_FIXTURES:
            request.getfixturevalue(MODEL_FIXTURES[notebook.stem])
    page = browser_page.page
    relative = notebook.relative_to(REPO_ROOT).as_posix()
    screenshot = SCREENSHOTS_DIR / f"{notebook.stem}.png"

    page.goto(
        notebook_url(jupyterlab, relative, f"browser-test-{notebook.stem}"), timeout=OPEN_TIMEOUT_MS
    )
    run = None
    driven = None
    ran_cells = []
    try:
        _wait(
            page, JS_NOTEBOOK_READY, OPEN_TIMEOUT_MS, "the notebook to open", screenshot, relative
        )
        page.evaluate(JS_COLLAPSE_SIDEBARS)
        # The widget manager restores saved widgets once the notebook's kernel is up.
        _wait(page, JS_KERNEL_IDLE, OPEN_TIMEOUT_MS, "the kernel to start", screenshot, relative)
        if run_all:
            page.evaluate(JS_START_TAGGED_RUN, WIDGET_TAG)
            _wait(
                page,
                JS_RUN_FINISHED,
                RUN_TIMEOUT_MS,
                "the tagged cells to run",
                screenshot,
                relative,
            )
            run = page.evaluate("() => window.__courseRun")
            _wait(
                page,
                JS_KERNEL_IDLE,
                OPEN_TIMEOUT_MS,
                "the kernel to go idle after the run",
                screenshot,
                relative,
            )
            driven = _drive_every_control(page)
        settled = True
        ran_cells = [r["cell"] for r in run["ran"]] if run_all and run else []
        try:
            page.wait_for_function(
                JS_SETTLED, arg=ran_cells, timeout=SETTLE_TIMEOUT_MS, polling=500
            )
        except Exception:
            settled = False  # the report below says what did not render
        page.wait_for_timeout(500)
        report = page.evaluate(JS_REPORT)
        screenshot_whole_notebook(page, screenshot)
    finally:
        with contextlib.suppress(Exception):
            page.evaluate(JS_SHUTDOWN_KERNELS)

    details = _describe(report, browser_page)
    assert not report["errors"], (
        f"{relative}: cells show error outputs in JupyterLab: "
        + "; ".join(
            f"cell {e['cell']} ({e['source']}): {e['ename']}: {e['evalue']}"
            for e in report["errors"]
        )
        + f"\nscreenshot: {screenshot}"
    )
    assert not report["tracebacks"], (
        f"{relative}: a traceback is shown in the output of cells {report['tracebacks']}\n"
        f"screenshot: {screenshot}"
    )
    if run_all:
        assert run and run.get("ok"), (
            f"{relative}: JupyterLab reports the run failed: {run}\n{details}"
        )
        ran = [r["cell"] for r in run["ran"] if r["count"] is not None]
        assert ran == tagged, (
            f"{relative}: of the cells tagged {WIDGET_TAG!r} ({tagged}) these ran: {ran}\n{details}"
        )
        assert driven, f"{relative}: no control found to drive\nscreenshot: {screenshot}"
        unchanged = [d["control"] for d in driven if not d["changed"]]
        assert not unchanged, (
            f"{relative}: driving these controls changed no output within "
            f"{DRIVE_TIMEOUT_MS // 1000} s: {unchanged}\nscreenshot: {screenshot}"
        )
    if run_all and has_widgets:
        assert report["widgets"], (
            f"{relative}: stored outputs have widgets, but running it in JupyterLab displayed "
            f"none\n{details}"
        )
    # A widget the kernel closed (tqdm bar with leave=False, widget.close()) is hidden on purpose.
    # JupyterLab 4 leaves a stored widget output blank (it does not restore saved widget state:
    # jupyterlab/jupyterlab issue 15361), so only the cells run here must show theirs; every
    # widget output must still never show an error.
    broken = [
        w
        for w in report["widgets"]
        if w["error"] or (w["cell"] in ran_cells and not (w["rendered"] or w["closed"]))
    ]
    assert not broken, (
        f"{relative}: widget outputs that did not render: {broken}\n"
        f"screenshot: {screenshot}\n{details}"
    )
    assert not report["widgetErrorText"], (
        f"{relative}: the page shows a widget that failed to display\n"
        f"screenshot: {screenshot}\n{details}"
    )
    assert settled, f"{relative}: the notebook did not finish rendering\n{details}"
    assert report["brokenImages"] == 0, (
        f"{relative}: {report['brokenImages']} images did not load\nscreenshot: {screenshot}"
    )
    assert not browser_page.external_requests, (
        f"{relative}: the page tried to reach the internet (the course runs offline): "
        f"{browser_page.external_requests[:10]}"
    )
    assert _digest(notebook) == before, (
        f"{relative} changed on disk while it was open in the browser (autosave should be off)"
    )


# The controls a learner drives, in the order tried: slider handle, text box, drop-down, button.
CONTROLS = (
    (".jp-Notebook .widget-slider .noUi-handle", "slider"),
    (".jp-Notebook .widget-text input", "text box"),
    (".jp-Notebook .widget-textarea textarea", "text area"),
    (".jp-Notebook .widget-dropdown select", "drop-down"),
    (".jp-Notebook button.jupyter-button", "button"),
)
# What the outputs show: their text and the images' sources (a redrawn plot gets a new one).
JS_OUTPUT_SNAPSHOT = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea'))
  .map(area => area.innerText + Array.from(area.querySelectorAll('img'))
       .map(img => img.src.length + ':' + img.src.slice(-64)).join('|')).join('\\n')"""


def _drive(page, control, kind: str) -> None:
    """Use one control as a learner would."""
    control.scroll_into_view_if_needed()
    if kind == "slider":  # one step towards the side that has room (a slider may start at max)
        at_max = control.get_attribute("aria-valuenow") == control.get_attribute("aria-valuemax")
        control.focus()
        control.press("ArrowLeft" if at_max else "ArrowRight")
    elif kind in ("text box", "text area"):
        control.fill(control.input_value() + " and the staff were great")
        control.press("Enter")
    elif kind == "drop-down":
        options = control.locator("option")
        current = control.input_value()
        values = [options.nth(i).get_attribute("value") for i in range(options.count())]
        control.select_option(value=next((v for v in values if v != current), current))
    else:
        control.click()


def _drive_every_control(page) -> list[dict]:
    """Drive every control of the notebook in turn; for each, whether some output changed."""
    results = []
    for selector, kind in CONTROLS:
        controls = page.locator(selector)
        for index in range(controls.count()):
            before = page.evaluate(JS_OUTPUT_SNAPSHOT)
            _drive(page, controls.nth(index), kind)
            try:
                page.wait_for_function(
                    f"(before) => ({JS_OUTPUT_SNAPSHOT})() !== before",
                    arg=before,
                    timeout=DRIVE_TIMEOUT_MS,
                    polling=250,
                )
                changed = True
            except Exception:
                changed = False
            results.append({"control": f"{kind} {index + 1}", "changed": changed})
            page.wait_for_function(JS_KERNEL_IDLE, timeout=DRIVE_TIMEOUT_MS, polling=250)
    return results
