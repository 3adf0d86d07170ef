"""Every notebook of the course, as a participant sees it in JupyterLab in a real browser.

nbval proves that each notebook runs; it cannot see a widget that fails to display. Here each
notebook is opened in JupyterLab in Chromium. Notebooks whose stored outputs contain ipywidgets
widgets are run top to bottom in the browser (widgets only exist while a kernel backs them);
the others are opened and rendered. Then: no cell shows an error, every widget output shows a
widget (and never "Error displaying widget"), every image loads, the page asked nothing of the
internet, and the notebook file on disk is unchanged. A screenshot of each notebook is saved in
``build/screenshots/<notebook>.png``.
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
    JS_START_RUN_ALL,
    NOTEBOOKS_DIR,
    REPO_ROOT,
    SCREENSHOTS_DIR,
    notebook_has_widgets,
    notebook_url,
    screenshot_whole_notebook,
)

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))

# Bounded but generous: the widget notebooks run on the kernel in full, on 2 CPU cores.
OPEN_TIMEOUT_MS = 120_000  # JupyterLab loads, the notebook opens, the kernel starts
RUN_TIMEOUT_MS = 600_000  # one notebook, all cells
SETTLE_TIMEOUT_MS = 60_000  # widgets and images render after the last cell ran


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
def test_notebook_in_jupyterlab(notebook, jupyterlab, browser_page):
    before = _digest(notebook)
    run_all = notebook_has_widgets(notebook)
    page = browser_page.page
    relative = notebook.relative_to(REPO_ROOT).as_posix()
    screenshot = SCREENSHOTS_DIR / f"{notebook.stem}.png"

    page.goto(
        notebook_url(jupyterlab, relative, f"browser-test-{notebook.stem}"), timeout=OPEN_TIMEOUT_MS
    )
    run = None
    try:
        _wait(
            page, JS_NOTEBOOK_READY, OPEN_TIMEOUT_MS, "the notebook to open", screenshot, relative
        )
        page.evaluate(JS_COLLAPSE_SIDEBARS)
        if run_all:
            _wait(
                page, JS_KERNEL_IDLE, OPEN_TIMEOUT_MS, "the kernel to start", screenshot, relative
            )
            page.evaluate(JS_START_RUN_ALL)
            _wait(page, JS_RUN_FINISHED, RUN_TIMEOUT_MS, "all cells to run", screenshot, relative)
            run = page.evaluate("() => window.__courseRun")
            _wait(
                page,
                JS_KERNEL_IDLE,
                OPEN_TIMEOUT_MS,
                "the kernel to go idle after the run",
                screenshot,
                relative,
            )
        settled = True
        try:
            page.wait_for_function(JS_SETTLED, timeout=SETTLE_TIMEOUT_MS, polling=500)
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
        assert report["executed"] == report["codeCells"] - _empty_code_cells(notebook), (
            f"{relative}: only {report['executed']} of {report['codeCells']} code cells ran\n{details}"
        )
        assert report["widgets"], (
            f"{relative}: stored outputs have widgets, but running it in "
            f"JupyterLab displayed none\n{details}"
        )
    # A widget the kernel closed (tqdm bar with leave=False, widget.close()) is hidden on purpose.
    broken = [w for w in report["widgets"] if w["error"] or not (w["rendered"] or w["closed"])]
    assert not broken, (
        f"{relative}: widget outputs that did not render: {broken}\n"
        f"screenshot: {screenshot}\n{details}"
    )
    assert not report["widgetErrorText"], (
        f"{relative}: the page shows a widget that failed to display\nscreenshot: {screenshot}\n{details}"
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


def _empty_code_cells(notebook) -> int:
    """Code cells with nothing to run (JupyterLab gives them no execution count)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(1 for c in cells if c["cell_type"] == "code" and not "".join(c["source"]).strip())
