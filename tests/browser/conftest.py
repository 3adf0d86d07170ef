"""Fixtures for the real-browser tests: Chromium via Playwright, and a throwaway JupyterLab.

These tests are skipped only when ``COURSE_SKIP_BROWSER_TESTS=1`` is set. Without Chromium
(and without that variable) they fail, and the failure says how to install it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM_ARGS,
    CHROMIUM_ENV,
    INSTALL_HINT,
    REPO_ROOT,
    SKIP_ENV,
    find_chromium,
    is_loopback_url,
    skip_requested,
    start_jupyterlab,
)

HERE = Path(__file__).resolve().parent


def _is_browser_test(item) -> bool:
    return HERE in Path(str(item.fspath)).resolve().parents


def pytest_collection_modifyitems(config, items):
    if not skip_requested():
        return
    marker = pytest.mark.skip(
        reason=f"{SKIP_ENV} is set: real-browser tests skipped on request (unset it to run them)"
    )
    for item in items:
        if _is_browser_test(item):
            item.add_marker(marker)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # Say it loudly: a skipped browser test must never pass unnoticed.
    if skip_requested():
        terminalreporter.write_line(
            f"NOTE: the real-browser tests (tests/browser) were SKIPPED because {SKIP_ENV} is set.",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        override = os.environ.get(CHROMIUM_ENV)
        where = (
            f"{CHROMIUM_ENV}={override} is not an executable file."
            if override
            else "Chromium was not found (no `chromium` on PATH, no /usr/bin/chromium)."
        )
        pytest.fail(where + "\n" + INSTALL_HINT, pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One Chromium for the whole session, launched from the system binary (never downloaded)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "The Python package 'playwright' is missing: run `make setup` "
            "(pip install -r requirements.txt). Do not run `playwright install`; the "
            "tests use the system Chromium.\n" + INSTALL_HINT,
            pytrace=False,
        )
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True, timeout=120_000
            )
        except Exception as error:  # a broken install: say what to do, not just the stack
            pytest.fail(
                f"Could not start Chromium at {chromium_path}: {error}\n" + INSTALL_HINT,
                pytrace=False,
            )
        yield browser
        browser.close()


class PageRecorder:
    """A fresh browser page that remembers console errors and non-loopback requests."""

    def __init__(self, context):
        self.context = context
        self.page = context.new_page()
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []  # uncaught exceptions in the page's JavaScript
        self.external_requests: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)[:300]))
        self.page.on("request", self._on_request)

    def _on_console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text[:300])

    def _on_request(self, request):
        if not is_loopback_url(request.url):
            self.external_requests.append(request.url)


@pytest.fixture
def browser_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    recorder = PageRecorder(context)
    yield recorder
    with contextlib.suppress(Exception):
        context.close()


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory, browser):
    """JupyterLab serving the repository on a free loopback port; stopped, kernels and all,
    at the end of the session."""
    server, base_url = start_jupyterlab(REPO_ROOT, tmp_path_factory.mktemp("jupyterlab"))
    yield base_url
    server.stop()
    left = server.leftovers()
    assert not left, f"JupyterLab left processes running after it was stopped: {left}"
