"""The room in a real browser: a participant logs in through the hub's page in Chromium, opens
their own copy of lesson 01 in JupyterLab and runs its first cell. The screenshot is saved as
``build/screenshots/room_lesson_01.png``.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from browser_helpers import SCREENSHOTS_DIR

from course_lib.room import accounts
from course_lib.room.cli import PROXY
from course_lib.room.command import RoomCommand
from course_lib.room.names import account_name

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

CODE = "browser-room-code"
NAME = f"eve-{os.getpid() % 100000}"


@pytest.fixture()
def room():
    if not accounts.running_as_root():
        pytest.skip("the room creates system accounts: run the tests as root")
    assert os.access(PROXY, os.X_OK), f"{PROXY} missing: run `make setup` (npm ci)"
    top = Path(tempfile.mkdtemp(prefix="course-room-browser-"))
    os.chmod(top, 0o755)
    run = RoomCommand(top / "data", CODE, 2, ["--grant-traverse", "--threads", "1"])
    try:
        yield run.start()
        assert run.stop() == []
    finally:
        if run.process and run.process.running():
            run.stop()
        accounts.remove_account(account_name(NAME))
        shutil.rmtree(top, ignore_errors=True)


def test_a_participant_logs_in_and_runs_lesson_01_in_the_browser(room, browser_page):
    page = browser_page.page
    page.goto(room.url + "/hub/login")
    page.fill("#username_input", NAME)
    page.fill("#password_input", CODE)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{NAME}/lab**", timeout=120_000)  # the server started

    page.goto(f"{room.url}/user/{NAME}/lab/tree/lessons/01_attention.ipynb")
    first_code = page.locator(".jp-Notebook .jp-CodeCell").first
    first_code.locator(".cm-content").click(timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    page.keyboard.press("Shift+Enter")
    output = first_code.locator(".jp-OutputArea-output")
    output.filter(has_text="course_lib ready").wait_for(timeout=90_000)

    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS_DIR / "room_lesson_01.png"))
    assert "official Jupyter news" not in page.content()  # the news prompt is off in the room
    assert browser_page.external_requests == []
    assert browser_page.page_errors == []
