"""The submission server's page in a real browser: a team uploads its file and sees its message
and the board.

Starts ``python -m course_lib hackathon serve`` on a free loopback port (through
``course_lib.hackathon.client.SubmissionServer``; made-up answers, so no model is needed), opens
``/`` in Chromium, types a team's token, picks a CSV with one line missing, clicks "Submit the
file", and checks the message (the checker's warning and the public score) and the board (the
team at rank 1, a team named with markup shown as text). Screenshots:
``build/screenshots/hackathon_upload.png`` (the message) and
``build/screenshots/hackathon_board.png`` (the board).
"""

from __future__ import annotations

import pytest
from browser_helpers import SCREENSHOTS_DIR

from course_lib.data import LABELS
from course_lib.hackathon.client import SubmissionServer

N = 30
IDS = [f"t{i:02d}" for i in range(N)]
TRUTH = [LABELS[i % 3] for i in range(N)]
MARKUP_TEAM = "<i>Italic</i> & co"


@pytest.fixture(scope="module")
def hackathon_server(tmp_path_factory, browser):  # browser: fail fast without Chromium
    folder = tmp_path_factory.mktemp("hackathon-page")
    answers = folder / "answers.csv"
    answers.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, TRUTH)))
    teams = folder / "teams.txt"
    teams.write_text(f"red\n{MARKUP_TEAM}\n", encoding="utf-8")
    server = SubmissionServer(teams, answers, folder / "data", log_path=folder / "server.log")
    with server:
        yield server
    assert not server.leftovers(), "the submission server left processes behind"


def test_a_team_uploads_in_the_browser_and_sees_its_message_and_the_board(
    hackathon_server, browser_page, tmp_path
):
    submission = tmp_path / "red.csv"
    rows = "".join(f"{i},{y}\n" for i, y in zip(IDS[:-1], TRUTH[:-1]))  # the last tweet missing
    submission.write_text("id,label\n" + rows)
    page = browser_page.page
    page.goto(hackathon_server.url + "/")
    page.fill("#token", hackathon_server.tokens["red"])
    page.dispatch_event("#token", "change")
    page.set_input_files("#file", str(submission))
    page.click("#submit")
    page.wait_for_selector("#result", timeout=30_000)
    message = page.inner_text("#result")
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS_DIR / "hackathon_upload.png"), full_page=True)
    assert "scored: public macro-F1" in message, message
    assert f"1 of the {N} challenge ids have no line" in message, message

    page.wait_for_function(
        "document.querySelectorAll('#board tbody tr').length === 2 && "
        "document.querySelector('#board tbody tr td.team').textContent === 'red'",
        timeout=30_000,
    )
    board = page.locator("#board")
    board.screenshot(path=str(SCREENSHOTS_DIR / "hackathon_board.png"))
    cells = page.eval_on_selector_all(
        "#board tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert cells[0][:2] == ["1", "red"] and float(cells[0][2]) > 0.9, cells
    assert cells[1][1] == MARKUP_TEAM and cells[1][2] == "no score yet", cells  # text, not HTML
    assert page.locator("#board i").count() == 0
    assert "1 of 6 scored submissions" in page.inner_text("#whoami")
    assert page.locator("#history tbody tr").count() == 1
    assert not browser_page.page_errors, browser_page.page_errors
    assert not browser_page.console_errors, browser_page.console_errors
    assert not browser_page.external_requests, (
        f"the page tried to reach the internet: {browser_page.external_requests}"
    )
