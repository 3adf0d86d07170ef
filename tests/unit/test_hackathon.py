"""course_lib.hackathon: the challenge set, every bad submission, every misbehaving service,
the scoring rule and the leaderboard.

Most tests use a six-tweet challenge made here (no corpus needed). Services are tiny HTTP
servers on 127.0.0.1 started by the test (``LocalService``), never anything off the machine.
"""

import json
import subprocess
import sys
import time

import pytest
from sklearn.metrics import f1_score

from course_lib import data
from course_lib.hackathon import challenge as C
from course_lib.hackathon import devset
from course_lib.hackathon import leaderboard as L
from course_lib.hackathon import scoring as S
from course_lib.hackathon import services as V
from course_lib.hackathon import submissions as U
from course_lib.hackathon.cli import main, parse_services, parse_tokens

IDS = ["c1", "c2", "c3", "c4", "c5", "c6"]
TRUTH = ["negative", "neutral", "positive", "negative", "neutral", "positive"]
TEXTS = ["awful delay", "a flight", "love it", "worst crew", "a car", "great team"]
GOOD = "id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, TRUTH))


@pytest.fixture
def challenge():
    return C.Challenge(list(IDS), list(TRUTH), list(TEXTS), source="test set")


def submit(tmp_path, content, name="team"):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return U.read_submission(path, set(IDS))


def problems_text(sub) -> str:
    return " | ".join(sub.problems)


# --------------------------------------------------------------------------------------------
# Submission files: every bad case gets a message, never an exception
# --------------------------------------------------------------------------------------------
def test_valid_submission_has_every_answer_and_no_problem(tmp_path):
    sub = submit(tmp_path, GOOD)
    assert not sub.rejected and sub.problems == []
    assert sub.predictions == dict(zip(IDS, TRUTH))
    assert sub.team == "team"


def test_labels_are_case_insensitive_and_extra_or_reordered_columns_are_fine(tmp_path):
    rows = "".join(f"0.9, {y.upper()} ,{i}\n" for i, y in zip(IDS, TRUTH))
    sub = submit(tmp_path, "score,label,id\n" + rows)
    assert sub.problems == [] and sub.predictions == dict(zip(IDS, TRUTH))


def test_unknown_ids_are_ignored_and_named(tmp_path):
    sub = submit(tmp_path, GOOD + "c99,neutral\nsurprise,positive\n")
    assert not sub.rejected
    assert "2 ids are not in the challenge set" in problems_text(sub)
    assert "'c99'" in problems_text(sub)
    assert sub.predictions == dict(zip(IDS, TRUTH))


def test_missing_rows_count_as_wrong(tmp_path, challenge):
    sub = submit(tmp_path, "id,label\nc1,negative\nc2,neutral\n")
    assert "4 of the 6 challenge ids have no line" in problems_text(sub)
    expected = f1_score(TRUTH, TRUTH[:2] + [U.NO_ANSWER] * 4, labels=data.LABELS, average="macro")
    assert S.macro_f1(challenge.labels, sub.predictions, challenge.ids) == pytest.approx(expected)


def test_duplicate_rows_first_one_counts(tmp_path):
    sub = submit(tmp_path, GOOD + "c1,positive\n")
    assert "1 ids occur more than once" in problems_text(sub)
    assert sub.predictions["c1"] == "negative"


def test_unknown_labels_count_as_wrong_and_are_named(tmp_path, challenge):
    sub = submit(tmp_path, GOOD.replace("c3,positive", "c3,happy"))
    assert "1 labels are not one of negative, neutral, positive" in problems_text(sub)
    assert "'happy'" in problems_text(sub)
    assert sub.predictions["c3"] == U.NO_ANSWER
    assert S.macro_f1(challenge.labels, sub.predictions, challenge.ids) < 1.0


def test_missing_header_is_read_anyway_when_the_first_line_is_an_answer(tmp_path):
    sub = submit(tmp_path, GOOD.split("\n", 1)[1])
    assert not sub.rejected
    assert "no header line" in problems_text(sub)
    assert sub.predictions == dict(zip(IDS, TRUTH))


def test_a_first_line_that_is_neither_header_nor_answer_is_rejected(tmp_path):
    sub = submit(tmp_path, "prediction,tweet\nneutral,c1\n")
    assert sub.rejected and "the first line must be the header id,label" in problems_text(sub)


def test_semicolon_separated_file_gets_a_hint(tmp_path):
    sub = submit(tmp_path, GOOD.replace(",", ";"))
    assert sub.rejected and "use commas" in problems_text(sub)


@pytest.mark.parametrize("content", [b"", b"  \n\r\n", b"\n\n"], ids=["empty", "blank", "newlines"])
def test_empty_file_is_rejected(tmp_path, content):
    sub = submit(tmp_path, content)
    assert sub.rejected and "the file is empty" in problems_text(sub)


def test_binary_file_is_rejected(tmp_path):
    sub = submit(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert sub.rejected and "not text" in problems_text(sub)


def test_not_utf8_is_rejected_with_the_byte_position(tmp_path):
    sub = submit(tmp_path, ("id,label\nc1,négative\n").encode("latin-1"))
    assert sub.rejected
    assert "not UTF-8 (byte 13 is 0xe9)" in problems_text(sub)


def test_bom_and_crlf_are_accepted(tmp_path):
    sub = submit(tmp_path, b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    assert not sub.rejected and sub.problems == []
    assert sub.predictions == dict(zip(IDS, TRUTH))


def test_huge_file_is_rejected_by_size(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text(GOOD + "c1,neutral\n" * (U.MAX_BYTES // 10))
    assert path.stat().st_size > U.MAX_BYTES
    sub = U.read_submission(path, set(IDS))
    assert sub.rejected and "over the limit" in problems_text(sub)


def test_short_lines_are_reported_not_crashed_on(tmp_path):
    sub = submit(tmp_path, GOOD + "c1\n")
    assert "1 lines have fewer columns than the header" in problems_text(sub)


def test_a_file_of_only_unusable_answers_is_rejected(tmp_path):
    sub = submit(tmp_path, "id,label\nc1,yes\nc2,no\n")
    assert sub.rejected and "no usable answer" in problems_text(sub)


def test_write_submission_round_trips(tmp_path):
    path = U.write_submission(tmp_path / "x.csv", IDS, TRUTH)
    assert U.read_submission(path, set(IDS)).predictions == dict(zip(IDS, TRUTH))


# --------------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------------
def test_macro_f1_matches_scikit_learn_and_counts_missing_as_wrong():
    guesses = {"c1": "negative", "c2": "positive", "c3": "positive", "c5": "neutral"}
    padded = [guesses.get(i, "(none)") for i in IDS]
    expected = f1_score(TRUTH, padded, labels=data.LABELS, average="macro")
    assert S.macro_f1(TRUTH, guesses, IDS) == pytest.approx(expected)
    assert S.macro_f1(TRUTH, dict(zip(IDS, TRUTH)), IDS) == 1.0


@pytest.mark.parametrize(
    "p95, bonus",
    [(None, 0.0), (3.0, S.FAST_BONUS), (15.0, S.FAST_BONUS), (15.1, S.OK_BONUS), (101, 0.0)],
)
def test_latency_bonus_thresholds(p95, bonus):
    assert S.latency_bonus(p95) == bonus


def test_the_limits_can_be_moved_for_a_slow_network(challenge, monkeypatch):
    monkeypatch.setattr(V, "MIN_TIMED", 3)
    with V.LocalService(V.labels_responder(truth_predictor)) as url:
        strict = S.score_all(None, challenge, {"t": url}, fast_ms=0.0, ok_ms=0.0)
        lenient = S.score_all(None, challenge, {"t": url}, fast_ms=1e6, ok_ms=1e6)
    assert strict.rows[0].score == 1.0 and lenient.rows[0].score == 1.0 + S.FAST_BONUS
    assert "p95 &le; 1e+06 ms" in L.html_leaderboard(lenient)


def test_ranking_puts_rejected_last_and_shares_ranks_within_the_bootstrap_noise():
    ids = [f"t{i}" for i in range(300)]
    truth = [data.LABELS[i % 3] for i in range(300)]
    big = C.Challenge(ids, truth, None, source="300 tweets")

    def row(team, wrong):  # a team that answers the first `wrong` tweets wrongly
        if wrong is None:
            return S.TeamRow(team, [S.Entry("file", None, 0, [])])
        answers = [data.LABELS[(i + (k < wrong)) % 3] for k, i in enumerate(range(300))]
        predicted = dict(zip(ids, answers))
        f1 = S.macro_f1(truth, predicted, ids)
        return S.TeamRow(team, [S.Entry("file", f1, 300, [], predictions=predicted)])

    ranked = S.rank([row("b", 3), row("none", None), row("a", 0), row("c", 90)], big)
    # 3 wrong of 300 is within the noise of a perfect file; 90 wrong is not
    assert [(r.team, r.rank) for r in ranked] == [("a", 1), ("b", 1), ("c", 3), ("none", None)]


def test_other_teams_are_still_scored_next_to_every_kind_of_broken_file(tmp_path, challenge):
    bad = {
        "empty": b"",
        "binary": b"\x00\x01\x02",
        "latin1": "id,label\nc1,négatif\n".encode("latin-1"),
        "noheader": b"hello,world\n",
    }
    for team, content in bad.items():
        (tmp_path / f"{team}.csv").write_bytes(content)
    (tmp_path / "perfect.csv").write_text(GOOD)
    (tmp_path / "half.csv").write_text("id,label\nc1,negative\nc2,neutral\nc3,positive\n")
    (tmp_path / "notes.txt").write_text("not a submission")
    board = S.score_all(tmp_path, challenge)
    by_team = {r.team: r for r in board.rows}
    assert set(by_team) == set(bad) | {"perfect", "half"}
    assert by_team["perfect"].rank == 1 and by_team["perfect"].score == 1.0
    assert by_team["half"].rank == 2 and 0 < by_team["half"].score < 1
    assert all(by_team[t].score is None and by_team[t].entries[0].problems for t in bad)
    assert any("notes.txt" in n for n in board.notes)


def test_a_missing_submissions_folder_is_a_note_not_a_crash(tmp_path, challenge):
    board = S.score_all(tmp_path / "nope", challenge)
    assert board.rows == [] and "not a folder" in board.notes[0]


# --------------------------------------------------------------------------------------------
# Services: tiny servers on 127.0.0.1
# --------------------------------------------------------------------------------------------
def truth_predictor(texts):
    return [TRUTH[TEXTS.index(t)] for t in texts]


def test_a_good_service_is_scored_with_its_p95_and_bonus(challenge, monkeypatch):
    monkeypatch.setattr(V, "MIN_TIMED", 3)
    with V.LocalService(V.labels_responder(truth_predictor)) as url:
        entry = S.score_service("fast", url, challenge)
    assert entry.macro_f1 == 1.0 and entry.answered == 6 and entry.problems == []
    assert entry.p95_ms is not None and entry.p95_ms > 0
    assert entry.bonus == S.latency_bonus(entry.p95_ms)


def test_url_may_name_predict_or_not(challenge):
    with V.LocalService(V.labels_responder(truth_predictor)) as url:
        for u in (url, url + "/", url + "/predict"):
            assert V.query_service("t", u, IDS, TEXTS).predictions == dict(zip(IDS, TRUTH))


def test_a_service_that_is_down_is_reported_and_given_up_on(challenge):
    url = V.unused_local_url()
    t0 = time.perf_counter()
    entry = S.score_service("down", url, challenge, timeout=1.0)
    assert time.perf_counter() - t0 < 10
    assert entry.score is None
    assert "down" in entry.problems[0] and "cannot connect" in entry.problems[0]
    assert any("gave up after 3 failures in a row" in p for p in entry.problems)


def test_a_slow_service_times_out_and_is_given_up_on(challenge):
    service = None

    def hang(body):
        service.release.wait(timeout=10)  # until the test is over, at most 10 s
        return 200, b"{}"

    service = V.LocalService(hang)
    t0 = time.perf_counter()
    with service as url:
        entry = S.score_service("slow", url, challenge, timeout=0.2)
    assert time.perf_counter() - t0 < 8
    assert entry.score is None
    assert "too slow" in entry.problems[0] and "within 0.2 s" in entry.problems[0]


GARBAGE = {
    "not JSON": (200, b"<html>oops</html>"),
    "wrong shape": (200, b'{"label": "neutral"}'),
    "empty predictions": (200, b'{"predictions": []}'),
    "unknown label": (200, b'{"predictions": [{"label": "LABEL_1"}]}'),
    "label not a string": (200, b'{"predictions": [{"label": 2}]}'),
    "not UTF-8": (200, b"\xff\xfe\x00"),
    "server error": (500, b'{"detail": "boom"}'),
    "huge answer": (200, b"[" + b"1," * (V.MAX_ANSWER_BYTES // 2 + 10) + b"1]"),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_a_service_answering_garbage_is_reported(case, challenge):
    status, body = GARBAGE[case]
    with V.LocalService(lambda _: (status, body)) as url:
        entry = S.score_service("junk", url, challenge)
    assert entry.score is None
    expected = "error" if status == 500 else "garbage answer"
    assert entry.problems[0].startswith(expected), entry.problems


def test_a_service_failing_on_some_tweets_loses_them_and_the_bonus(challenge, monkeypatch):
    monkeypatch.setattr(V, "MIN_TIMED", 3)

    def flaky(body):
        if json.loads(body)["text"][0] == "love it":
            return 500, b"{}"
        return V.labels_responder(truth_predictor)(body)

    with V.LocalService(flaky) as url:
        entry = S.score_service("flaky", url, challenge)
    assert entry.answered == 5 and entry.macro_f1 < 1.0 and entry.bonus == 0.0
    assert any("no latency bonus" in p for p in entry.problems)


def test_broken_services_do_not_stop_the_others_and_a_team_keeps_its_best(tmp_path, challenge):
    (tmp_path / "both.csv").write_text("id,label\nc1,negative\n")
    with (
        V.LocalService(V.labels_responder(truth_predictor)) as good,
        V.LocalService(lambda _: (200, b"nonsense")) as junk,
    ):
        board = S.score_all(
            tmp_path,
            challenge,
            {"both": good, "junk": junk, "down": V.unused_local_url()},
            timeout=1.0,
        )
    by_team = {r.team: r for r in board.rows}
    assert by_team["both"].rank == 1 and by_team["both"].best.kind == "service"
    assert by_team["both"].entry("file").macro_f1 < by_team["both"].score
    assert by_team["junk"].score is None and by_team["down"].score is None


def test_a_service_with_a_token_is_scored_only_with_its_token(challenge):
    with V.LocalService(V.labels_responder(truth_predictor), token="s3cret") as url:
        board = S.score_all(None, challenge, {"t": url}, tokens={"t": "s3cret"})
        assert board.rows[0].score == 1.0
        board = S.score_all(None, challenge, {"t": url})
    assert board.rows[0].score is None
    assert board.rows[0].entries[0].problems[0].startswith("error (3x), e.g. answered HTTP 401")


def test_a_challenge_without_texts_cannot_score_services(challenge):
    no_text = C.Challenge(challenge.ids, challenge.labels, None, source="answers.csv")
    entry = S.score_service("x", "http://127.0.0.1:1", no_text)
    assert entry.score is None and "no texts" in entry.problems[0]


# --------------------------------------------------------------------------------------------
# Leaderboard outputs
# --------------------------------------------------------------------------------------------
def evil_board(tmp_path, challenge):
    name = '<script>alert("x")&co'
    (tmp_path / f"{name}.csv").write_text(GOOD)
    (tmp_path / "broken.csv").write_bytes(b"")
    return S.score_all(tmp_path, challenge), name


def test_html_is_self_contained_refreshes_and_escapes_team_names(tmp_path, challenge):
    board, name = evil_board(tmp_path, challenge)
    page = L.html_leaderboard(board, refresh_s=15)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&amp;co" in page
    assert '<meta http-equiv="refresh" content="15">' in page
    for outside in ("src=", "href=", "<link", "url(", "@import"):
        assert outside not in page
    assert "default-src 'none'" in page


def test_write_leaderboard_writes_text_json_png_html(tmp_path, challenge):
    subs = tmp_path / "subs"
    subs.mkdir()
    board, name = evil_board(subs, challenge)
    paths = L.write_leaderboard(board, tmp_path / "out")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = json.loads(paths["json"].read_text())["teams"]
    assert [r["team"] for r in records] == [name, "broken"]
    assert records[0]["score"] == 1.0 and records[1]["score"] is None
    assert "the file is empty" in paths["txt"].read_text()
    assert not (tmp_path / "out" / "leaderboard.html.tmp").exists()


def test_plot_survives_dollar_signs_in_team_names(tmp_path, challenge):
    (tmp_path / "$rich$ team.csv").write_text(GOOD)
    fig = L.plot_leaderboard(S.score_all(tmp_path, challenge), tmp_path / "x.png")
    assert fig.axes[0].get_xlabel().startswith("score")


def test_display_name_removes_control_characters_and_cuts():
    assert L.display_name("a\x1b[31mb\n") == "a?[31mb?"
    assert L.display_name("x" * 50, width=10) == "x" * 9 + "~"


# --------------------------------------------------------------------------------------------
# Challenge sets
# --------------------------------------------------------------------------------------------
def raw(row, sentiment, confidence, text):
    return data.RawTweet(row, sentiment, confidence, text)


def test_selection_rule_on_a_made_up_corpus():
    rows = [
        raw(0, "negative", 0.9, "My flight was late"),  # trained on
        raw(1, "negative", 0.55, "my flight was LATE"),  # copy of row 0
        raw(2, "positive", 0.55, "RT @bob: My flight was late!!"),  # near copy of row 0
        raw(3, "neutral", 0.52, "the car drove itself"),  # kept
        raw(4, "positive", 0.58, "great crew"),  # conflicts with row 5: both dropped
        raw(5, "negative", 0.51, "Great crew"),
        raw(6, "neutral", None, "no confidence at all"),  # other sub-corpus
        raw(7, "neutral", 0.45, "annotators split"),  # under 0.5
        raw(8, "positive", 0.59, "best airline ever"),  # kept
        raw(9, "positive", 0.50, "best airline ever"),  # same label duplicate: first kept
    ]
    assert C.select_band_rows(rows) == [3, 8]


@pytest.fixture(scope="module")
def course_set():
    return C.course_challenge()


def test_recorded_challenge_matches_the_corpus_and_holds_no_labels(course_set):
    record = json.loads(C.CHALLENGE_FILE.read_text())
    assert record["size"] == len(course_set.ids) == len(set(course_set.ids)) > 300
    assert not {"label", "labels", "sentiment"} & set(record)
    assert set(course_set.labels) == set(data.LABELS)


def test_challenge_is_disjoint_from_everything_lesson_05_trains_or_tests_on(course_set):
    split = data.read_split_record()["rows"]
    used_rows = {r for rows in split.values() for r in rows}
    assert not used_rows & set(json.loads(C.CHALLENGE_FILE.read_text())["rows"])
    seen = set()
    for name in data.SPLIT_NAMES:
        texts, _ = data.load_split(name)
        seen |= {data.dedup_key(t) for t in texts} | {C.near_copy_key(t) for t in texts}
    overlap = [t for t in course_set.texts if data.dedup_key(t) in seen]
    overlap += [t for t in course_set.texts if C.near_copy_key(t) in seen]
    assert overlap == []


def test_rebuilding_the_record_gives_the_committed_file(tmp_path):
    C.write_challenge_record(tmp_path / "challenge.json")
    assert (tmp_path / "challenge.json").read_text() == C.CHALLENGE_FILE.read_text()
    devset.write_dev_record(tmp_path / "dev.json")
    assert (tmp_path / "dev.json").read_text() == devset.DEV_FILE.read_text()


def test_a_tampered_record_is_refused(tmp_path):
    record = json.loads(C.CHALLENGE_FILE.read_text())
    record["rows"][0] += 1
    (tmp_path / "c.json").write_text(json.dumps(record))
    with pytest.raises(C.ChallengeError, match="differ"):
        C.course_challenge(tmp_path / "c.json")
    with pytest.raises(C.ChallengeError, match="missing"):
        C.course_challenge(tmp_path / "absent.json")


def test_teams_get_texts_and_ids_but_no_labels(tmp_path, challenge):
    path = C.write_challenge(tmp_path / "team", challenge)
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == "id,text"
    assert C.read_challenge_texts(path) == (IDS, TEXTS)


def test_an_instructors_answers_file(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_bytes(b"\xef\xbb\xbfid,label,text\r\na,Positive,nice\r\nb,negative,bad\r\n")
    own = C.read_answers(path)
    assert own.ids == ["a", "b"] and own.labels == ["positive", "negative"]
    assert own.texts == ["nice", "bad"]
    path.write_text("id,label\na,positive\n")
    assert C.read_answers(path).texts is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("label,text\npositive,x\n", "must name the columns"),
        ("id,label\na,happy\n", "line 2"),
        ("id,label\na,positive\na,negative\n", "occurs twice"),
        ("id,label\n", "no answers"),
    ],
)
def test_a_bad_answers_file_says_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "answers.csv"
    path.write_text(content)
    with pytest.raises(C.ChallengeError, match=message):
        C.read_answers(path)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def test_parse_services():
    assert parse_services(["a=http://127.0.0.1:8000", " b = http://x:1/predict"]) == {
        "a": "http://127.0.0.1:8000",
        "b": "http://x:1/predict",
    }
    for bad in ["nourl", "=http://x", "a=ftp://x"]:
        with pytest.raises(ValueError, match="NAME=http"):
            parse_services([bad])
    assert parse_tokens(["a=xyz"], {"a": "http://h"}) == {"a": "xyz"}
    for bad in ["b=xyz", "a=", "a"]:
        with pytest.raises(ValueError, match="NAME=TOKEN"):
            parse_tokens([bad], {"a": "http://h"})


def test_main_scores_files_and_services_with_an_answers_file(tmp_path, capsys):
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "id,label,text\n" + "".join(f"{i},{y},{t}\n" for i, y, t in zip(IDS, TRUTH, TEXTS))
    )
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "files_team.csv").write_text(GOOD)
    with V.LocalService(V.labels_responder(truth_predictor)) as url:
        code = main(
            [
                str(subs),
                "--answers",
                str(answers),
                "--service",
                f"web={url}",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert "files_team" in out and "web" in out and "6 tweets" in out
    assert (tmp_path / "out" / "leaderboard.html").is_file()


def test_main_every_scores_again_and_sees_a_new_file(tmp_path, capsys, monkeypatch):
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, TRUTH)))
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "early.csv").write_text(GOOD)
    naps = []

    def nap(seconds):  # instead of waiting: a team submits between two rounds
        naps.append(seconds)
        (subs / "late.csv").write_text(GOOD)

    monkeypatch.setattr("course_lib.hackathon.cli.time.sleep", nap)
    argv = [str(subs), "--answers", str(answers), "--every", "5", "--out", str(tmp_path / "o")]
    assert main(argv, rounds=2) == 0
    out = capsys.readouterr().out
    assert naps == [5.0] and out.count("Leaderboard:") == 2
    assert "late" in out.split("scoring again")[1] and "late" not in out.split("scoring again")[0]
    assert 'content="5"' in (tmp_path / "o" / "leaderboard.html").read_text()


def test_main_write_challenge_and_errors(tmp_path, capsys):
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label,text\nq1,neutral,hello\n")
    assert main(["--answers", str(answers), "--write-challenge", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "challenge.csv").read_text() == "id,text\nq1,hello\n"
    assert main(["--answers", str(tmp_path / "missing.csv"), str(tmp_path)]) == 2
    assert main(["--answers", str(answers)]) == 2
    assert main(["--answers", str(answers), "--service", "oops"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the answers file" in err and "NAME=http" in err


@pytest.mark.subprocess
def test_module_runs_as_a_command():
    out = subprocess.run(
        [sys.executable, "-m", "course_lib.hackathon", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "--service NAME=URL" in out.stdout


@pytest.mark.slow
def test_starter_writes_a_valid_submission(tmp_path):
    from course_lib.hackathon.starter import starter_submission

    path = C.write_challenge(tmp_path / "team")
    # one point of lesson 05's grid (the one it chooses) keeps this test to a single fit
    result = starter_submission(
        path, tmp_path / "subs" / "starter.csv", c_grid=(3.0,), class_weights=("balanced",)
    )
    ids, _ = C.read_challenge_texts(path)
    sub = U.read_submission(result["path"], set(ids))
    assert not sub.rejected and sub.problems == []
    assert result["validation_macro_f1"] > 0.6
    assert result["predict"](["worst flight ever, delayed again"]) == ["negative"]
    probabilities = result["predict_proba"](["worst flight ever", "a flight"])
    assert probabilities.shape == (2, 3) and abs(probabilities.sum() - 2) < 1e-6


@pytest.mark.subprocess
@pytest.mark.slow
def test_scores_lesson_07s_real_service(tmp_path, challenge, monkeypatch):
    """The scorer against a real ``python -m course_lib serve`` (a tiny random model, torch
    backend, with a token): every tweet answered with a course label, a p95 measured."""
    from tiny_models import tiny_classifier

    from course_lib import serving

    monkeypatch.setattr(V, "MIN_TIMED", 3)
    folder = tiny_classifier(tmp_path / "tiny")
    server = serving.ServerProcess(folder, backend="torch", token="tok", log_path=tmp_path / "log")
    with server:
        board = S.score_all(None, challenge, {"real": server.url}, tokens={"real": "tok"})
    entry = board.rows[0].entry("service")
    assert entry.answered == len(IDS) and entry.problems == []
    assert entry.p95_ms is not None and 0 <= entry.macro_f1 <= 1
