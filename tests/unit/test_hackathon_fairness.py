"""The competition's rules without HTTP: the splits, the dev set, the counted submission, the
limit, the tie rule, the lookup flag, the store across restarts and crashes, the teams file, the
guard on service addresses, and the prior-shift corrections.

A small made-up challenge (60 tweets) is enough for most; the dev set's tests read the corpus.
"""

import json
import os
import stat

import numpy as np
import pytest

from course_lib import data
from course_lib.hackathon import challenge as C
from course_lib.hackathon import competition as K
from course_lib.hackathon import devset, fairplay, priors, ranking, split, store, teams
from course_lib.hackathon import services as V

N = 60
IDS = [f"t{i:03d}" for i in range(N)]
LABELS = [data.LABELS[i % 3] for i in range(N)]
TEXTS = [f"tweet number {i}" for i in range(N)]


def answers(reference: bool = False) -> K.Answers:
    public, private = split.public_private(IDS, LABELS)
    ref = dict(zip(IDS, LABELS)) if reference else {}
    return K.Answers(IDS, LABELS, TEXTS, public, private, ref, "sha", "test answers")


def csv_bytes(labels) -> bytes:
    return ("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, labels))).encode()


def wrong_on(count: int) -> list[str]:
    """The true labels, with the first ``count`` shifted to a wrong class."""
    return [data.LABELS[(i + (i < count)) % 3] for i in range(N)]


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def game(tmp_path, limit=3, reference=False, clock=None, names=("red", "blue")):
    team_list = [teams.Team(name, "127.0.0.1") for name in names]
    tokens = {name: f"token-{name}" for name in names}
    return K.Competition(
        answers(reference),
        team_list,
        tokens,
        "admin-secret",
        store.SubmissionStore(tmp_path / "data"),
        limit_per_hour=limit,
        clock=clock or Clock(),
    )


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------
def test_public_private_split_is_stratified_deterministic_and_disjoint():
    public, private = split.public_private(IDS, LABELS, share=0.4, seed=0)
    assert sorted(public + private) == sorted(IDS) and not set(public) & set(private)
    assert len(public) == round(0.4 * N)
    by_id = dict(zip(IDS, LABELS))
    for label in data.LABELS:  # 20 of each: 8 public, 12 private
        assert sum(by_id[i] == label for i in public) == 8
    assert split.public_private(IDS, LABELS, share=0.4, seed=0) == (public, private)
    assert split.public_private(IDS, LABELS, share=0.4, seed=1) != (public, private)


def test_stratified_counts_add_up_by_largest_remainder():
    labels = ["a"] * 56 + ["b"] * 261 + ["c"] * 101  # the band's shares
    counts = split.stratified_counts(labels, 100)
    assert sum(counts.values()) == 100 and counts == {"a": 13, "b": 63, "c": 24}
    with pytest.raises(ValueError, match="cannot take"):
        split.stratified_counts(labels, 419)


def test_course_challenge_splits_into_127_public_and_191_private_with_equal_shares():
    course = C.course_challenge()
    public, private = split.public_private(course.ids, course.labels)
    assert (len(public), len(private)) == (127, 191)
    by_id = dict(zip(course.ids, course.labels))
    for label in data.LABELS:
        a = sum(by_id[i] == label for i in public) / len(public)
        b = sum(by_id[i] == label for i in private) / len(private)
        assert abs(a - b) < 0.01


# --------------------------------------------------------------------------------------------
# The dev set
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dev_and_challenge():
    return devset.dev_set(), C.course_challenge()


def test_dev_set_has_the_challenges_label_shares_not_the_training_pools(dev_and_challenge):
    dev, course = dev_and_challenge
    assert len(dev.ids) == C.DEV_SIZE == 100
    dev_shares, challenge_shares = (
        priors.label_shares(dev.labels),
        priors.label_shares(course.labels),
    )
    assert np.abs(dev_shares - challenge_shares).max() < 0.01
    train = priors.training_shares()
    assert train[0] > 0.45 and dev_shares[0] < 0.2  # the prior shift lesson 10 names
    recorded = json.loads(devset.DEV_FILE.read_text())["label_counts"]
    assert recorded == {y: dev.labels.count(y) for y in data.LABELS}


def test_dev_set_is_disjoint_from_the_challenge_and_from_lesson_05s_splits(dev_and_challenge):
    dev, course = dev_and_challenge
    dev_rows = set(json.loads(devset.DEV_FILE.read_text())["rows"])
    assert not dev_rows & set(json.loads(C.CHALLENGE_FILE.read_text())["rows"])
    assert not dev_rows & {r for rows in data.read_split_record()["rows"].values() for r in rows}
    keys = {data.dedup_key(t) for t in course.texts}
    for name in data.SPLIT_NAMES:
        keys |= {data.dedup_key(t) for t in data.load_split(name)[0]}
    assert not [t for t in dev.texts if data.dedup_key(t) in keys]


def test_teams_get_challenge_texts_without_labels(tmp_path):
    ids, texts = C.challenge_texts()
    assert len(ids) == len(texts) == 318
    path = C.write_challenge(tmp_path)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "id,text"


# --------------------------------------------------------------------------------------------
# The counted submission, the limit, the tie rule
# --------------------------------------------------------------------------------------------
def test_counted_submission_is_the_teams_choice_else_its_best_public():
    c = ranking.Candidate
    subs = [c(1, 0.50, 10.0), c(2, 0.61, 20.0), c(3, None, 30.0), c(4, 0.61, 40.0)]
    assert ranking.counted_submission(subs) == 2  # best, earliest of equals
    assert ranking.counted_submission(subs, chosen=1) == 1
    assert ranking.counted_submission(subs, chosen=3) == 2  # a rejected file cannot count
    assert ranking.counted_submission([c(5, None, 1.0)]) is None


def test_a_team_chooses_what_counts_and_a_rejected_file_cannot(tmp_path):
    g = game(tmp_path, limit=10)
    best = g.submit_file("red", "a.csv", csv_bytes(LABELS))
    worse = g.submit_file("red", "b.csv", csv_bytes(wrong_on(30)))
    broken = g.submit_file("red", "c.csv", b"\x00\x01")
    assert g.counted("red") == best.id
    g.choose("red", worse.id)
    assert g.counted("red") == worse.id
    for bad, status in ((broken.id, 409), (999, 404)):
        with pytest.raises(K.Refused) as err:
            g.choose("red", bad)
        assert err.value.status == status
    with pytest.raises(K.Refused):
        g.choose("blue", best.id)  # not blue's


def test_sliding_hourly_limit():
    assert fairplay.next_allowed([], 100.0, 2) is None
    assert fairplay.next_allowed([10.0], 100.0, 2) is None
    assert fairplay.next_allowed([10.0, 50.0], 100.0, 2) == 10.0 + 3600
    assert fairplay.next_allowed([10.0, 50.0], 3700.0, 2) is None  # the first left the window
    with pytest.raises(ValueError, match="at least 1"):
        fairplay.next_allowed([], 0.0, 0)


def test_limit_counts_scored_files_only_and_says_when_the_next_is_allowed(tmp_path):
    clock = Clock()
    g = game(tmp_path, limit=2, clock=clock)
    g.submit_file("red", "1.csv", csv_bytes(LABELS))
    g.submit_file("red", "broken.csv", b"")  # rejected: costs nothing
    clock.now += 600
    g.submit_file("red", "2.csv", csv_bytes(LABELS))
    with pytest.raises(K.Refused) as err:
        g.submit_file("red", "3.csv", csv_bytes(LABELS))
    assert err.value.status == 429 and err.value.retry_at == 1_000_000.0 + 3600
    assert "next one is allowed at" in err.value.message
    g.submit_file("blue", "1.csv", csv_bytes(LABELS))  # other teams are not held up
    clock.now = 1_000_000.0 + 3600
    g.submit_file("red", "3.csv", csv_bytes(LABELS))


def test_ties_are_measured_against_the_groups_first_team_so_they_do_not_chain():
    spread = np.linspace(0.0, 1.0, 1000)
    a = np.full(1000, 0.70)
    b = 0.69 + 0.03 * (spread - 0.5)  # a higher on 83 % of the resamples: a tie
    c = 0.68 + 0.03 * (0.5 - spread)  # b higher on 67 % (within b's noise), a on 100 %
    d = 0.675 + 0.03 * (spread - 0.5)  # c higher on 58 %: tied with c, its group's first
    assert ranking.tied_ranks([a, b, c, d]) == [1, 1, 3, 3]
    assert ranking.tied_ranks([a, a.copy()]) == [1, 1]


def test_weighted_macro_f1_with_unit_weights_is_scikit_learns():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    truth, guess = rng.integers(0, 3, 200), rng.integers(-1, 3, 200)  # -1: no answer
    expected = f1_score(truth, guess, labels=[0, 1, 2], average="macro", zero_division=0)
    got = ranking.weighted_macro_f1(truth, guess, np.ones((1, 200)))[0]
    assert got == pytest.approx(expected)


def test_board_ranks_public_live_and_private_in_the_final_with_both_scores(tmp_path):
    g = game(tmp_path, limit=10, names=("red", "blue", "green"))
    g.submit_file("red", "r.csv", csv_bytes(LABELS))
    g.submit_file("blue", "b.csv", csv_bytes(wrong_on(N)))
    live = g.board()
    assert live.split == "public" and live.size == len(g.answers.public)
    assert [(r.team, r.rank) for r in live.rows] == [("red", 1), ("blue", 2), ("green", None)]
    assert all(r.private is None for r in live.rows)
    final = g.reveal()
    assert final.final and final.size == len(g.answers.private)
    assert final.rows[0].private == 1.0 and final.rows[0].public == 1.0
    with pytest.raises(K.Refused) as err:
        g.submit_file("green", "late.csv", csv_bytes(LABELS))
    assert err.value.status == 409


# --------------------------------------------------------------------------------------------
# The lookup flag
# --------------------------------------------------------------------------------------------
def test_a_copy_of_the_corpus_labels_is_flagged_for_the_instructor_and_kept(tmp_path):
    g = game(tmp_path, limit=10, reference=True)
    copied = g.submit_file("red", "copy.csv", csv_bytes(LABELS))
    honest = g.submit_file("blue", "model.csv", csv_bytes(wrong_on(25)))
    assert copied.flagged and copied.agreement == 1.0
    assert not honest.flagged and honest.agreement < fairplay.LOOKUP_AGREEMENT
    public_rows = {r.team: r for r in g.board().rows}
    assert not public_rows["red"].flagged and public_rows["red"].rank == 1  # not removed
    assert {r.team: r.flagged for r in g.board(admin=True).rows} == {"red": True, "blue": False}
    assert not game(tmp_path / "other").submit_file("red", "c.csv", csv_bytes(LABELS)).flagged


def test_the_threshold_is_above_the_best_measured_model_by_the_margin():
    assert fairplay.LOOKUP_AGREEMENT == pytest.approx(
        fairplay.BEST_MEASURED_AGREEMENT + fairplay.LOOKUP_MARGIN
    )
    assert fairplay.looks_up_labels(1.0) and not fairplay.looks_up_labels(0.7)
    assert not fairplay.looks_up_labels(None)


# --------------------------------------------------------------------------------------------
# The store: restarts and crashes
# --------------------------------------------------------------------------------------------
def test_history_choices_and_reveal_survive_a_restart(tmp_path):
    g = game(tmp_path, limit=10)
    first = g.submit_file("red", "a.csv", csv_bytes(LABELS))
    second = g.submit_file("red", "b.csv", csv_bytes(wrong_on(10)))
    g.choose("red", second.id)
    g.store.close()
    again = game(tmp_path, limit=10)
    assert [r.id for r in again.store.of_team("red")] == [first.id, second.id]
    assert again.store.of_team("red")[0] == first
    assert again.counted("red") == second.id
    assert again.store.content(first.id) == csv_bytes(LABELS)
    again.reveal()
    again.store.close()
    assert game(tmp_path).store.revealed


def test_a_crash_mid_write_loses_only_the_unacknowledged_submission(tmp_path):
    g = game(tmp_path, limit=10)
    kept = g.submit_file("red", "a.csv", csv_bytes(LABELS))
    g.store.close()
    folder = tmp_path / "data"
    with (folder / store.LOG_NAME).open("ab") as log:  # a line torn in the middle of its write
        log.write(b'{"event":"submission","record":{"id":2,"te')
    (folder / store.FILES_DIR / ("000002.csv" + store.TMP_SUFFIX)).write_bytes(b"id,la")
    (folder / store.FILES_DIR / "000003.csv").write_bytes(b"renamed, never logged")
    again = game(tmp_path, limit=10)
    assert [r.id for r in again.store.records] == [kept.id]
    assert len(again.store.recovered) == 3
    assert not list((folder / store.FILES_DIR).glob("*" + store.TMP_SUFFIX))
    nxt = again.submit_file("blue", "b.csv", csv_bytes(LABELS))
    assert nxt.id == 2
    lines = (folder / store.LOG_NAME).read_bytes().splitlines()
    assert [json.loads(line)["record"]["id"] for line in lines] == [1, 2]


def test_a_damaged_line_inside_the_log_stops_the_start_with_a_clear_error(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / store.LOG_NAME).write_bytes(b"not json\n" + b'{"event":"reveal","time":1}\n')
    with pytest.raises(store.StoreError, match="not JSON, and lines follow it"):
        store.SubmissionStore(folder)


# --------------------------------------------------------------------------------------------
# Teams and tokens
# --------------------------------------------------------------------------------------------
def test_teams_file_tokens_and_admin_token(tmp_path):
    path = tmp_path / "teams.txt"
    path.write_text("# the teams\nred,192.168.1.20\n\n<b>Blue</b> & co\n", encoding="utf-8")
    found = teams.read_teams(path)
    assert found == [teams.Team("red", "192.168.1.20"), teams.Team("<b>Blue</b> & co", None)]
    tokens, new = teams.team_tokens(tmp_path, found)
    assert new == ["red", "<b>Blue</b> & co"] and len(set(tokens.values())) == 2
    again, new_again = teams.team_tokens(tmp_path, found + [teams.Team("green")])
    assert new_again == ["green"] and {k: again[k] for k in tokens} == tokens
    admin = teams.admin_token(tmp_path)
    assert teams.admin_token(tmp_path) == admin and admin not in again.values()
    for name in (teams.TOKENS_FILE, teams.ADMIN_FILE):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert "red" in teams.token_table(tokens, ["red"])


@pytest.mark.parametrize(
    "content, message",
    [
        ("red\nRED\n", "named twice"),
        ("x" * 41 + "\n", "at most 40"),
        ("a\tb\n", "control character"),
        ("red,host,extra\n", "TEAM or TEAM,HOST"),
        ("red,http://x/\n", "must be an address"),
        ("# nobody\n", "names no team"),
    ],
)
def test_a_bad_teams_file_names_the_line_and_the_problem(tmp_path, content, message):
    path = tmp_path / "teams.txt"
    path.write_text(content)
    with pytest.raises(teams.TeamsError, match=message):
        teams.read_teams(path)


# --------------------------------------------------------------------------------------------
# The guard: services only at the registered address
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, host, message",
    [
        ("http://192.0.2.7:8000", "127.0.0.1", "not the address registered"),
        ("http://localhost:8000", "127.0.0.1", "not the address registered"),
        ("http://127.0.0.1@192.0.2.7:8000", "127.0.0.1", "user name or password"),
        ("ftp://127.0.0.1/", "127.0.0.1", "not an http"),
        ("http://127.0.0.1:8000", None, "no service address is registered"),
    ],
)
def test_service_addresses_outside_the_registered_host_are_refused(url, host, message):
    with pytest.raises(V.NotRegistered, match=message):
        V.check_registered(url, host, "red")
    assert V.check_registered("http://127.0.0.1:9/", "127.0.0.1") == "http://127.0.0.1:9/"


def test_the_scorer_calls_no_unregistered_address_and_follows_no_redirect(tmp_path, monkeypatch):
    g = game(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("the scorer tried to call a service it should have refused")

    monkeypatch.setattr(K, "query_service", forbidden)
    with pytest.raises(K.Refused) as err:
        g.submit_service("red", "http://192.0.2.7:8000", None)
    assert err.value.status == 403 and g.store.records == []
    monkeypatch.undo()
    # A registered service that redirects elsewhere: not followed (the offline guard of the
    # test run would also fail the session if anything reached 192.0.2.7).
    elsewhere = {"Location": "http://192.0.2.7:8000/predict"}
    with V.LocalService(lambda body: (307, b"", elsewhere)) as url:
        record = g.submit_service("red", url, None, max_failures=2)
    assert record.rejected and "HTTP 307" in " ".join(record.problems)


# --------------------------------------------------------------------------------------------
# Prior shift
# --------------------------------------------------------------------------------------------
def test_bayes_correction_moves_probabilities_towards_the_new_shares():
    p = np.array([[0.5, 0.3, 0.2]])
    out = priors.bayes_corrected(p, np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.5, 0.25]))
    expected = np.array([0.25, 0.6, 0.2]) / 1.05
    assert np.allclose(out, [expected])


def test_matching_weights_bring_the_predicted_shares_to_the_target():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1.0, 4.0, 1.0], size=400)  # a model that answers neutral a lot
    target = np.array([0.3, 0.4, 0.3])
    weights = priors.matching_weights(probs, target)
    before = priors.label_shares(priors.relabel(probs))
    after = priors.label_shares(priors.relabel(probs, weights))
    assert weights[1] == 1.0 and np.abs(after - target).sum() < 0.03
    assert np.abs(before - target).sum() > 0.3


# --------------------------------------------------------------------------------------------
# The answers stay on the instructor's side
# --------------------------------------------------------------------------------------------
def test_lesson_10_never_loads_the_challenges_answers():
    from course_lib.settings import NOTEBOOKS_DIR

    nb = json.loads((NOTEBOOKS_DIR / "10_hackathon.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for needle in ("course_challenge", "read_answers", "CHALLENGE_FILE", "load_record"):
        assert needle not in code, f"lesson 10 calls {needle}: that reads the challenge's answers"
    assert "challenge_texts()" in code and "dev_set()" in code


def test_the_library_calls_lesson_10_makes_for_the_challenge_never_read_its_labels(
    tmp_path, monkeypatch
):
    """The text check above trusts the functions the lesson calls; this checks them: with every
    way to the challenge's labels refused, the lesson's challenge and dev-set calls still work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the challenge's answers were read")

    monkeypatch.setattr(C, "course_challenge", refuse)
    monkeypatch.setattr(C, "read_answers", refuse)
    path = C.write_challenge(tmp_path / "team")
    ids, texts = C.challenge_texts()
    assert C.read_challenge_texts(path) == (ids, texts) and len(ids) == 318
    dev = devset.dev_set()
    assert devset.write_dev_csv(tmp_path / "team", dev).is_file()
    assert not set(dev.ids) & set(ids)


def test_the_answers_command_writes_the_challenges_answers_for_the_instructor(tmp_path, capsys):
    from course_lib.__main__ import main

    out = tmp_path / "private" / "answers.csv"
    assert main(["hackathon", "answers", str(out)]) == 0
    assert "teams never get it" in capsys.readouterr().out
    written = C.read_answers(out)
    course = C.course_challenge()
    assert (written.ids, written.labels, written.texts) == (course.ids, course.labels, course.texts)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_a_data_folder_is_scored_against_one_answers_file_only(tmp_path):
    from course_lib.hackathon.server_cli import check_same_answers

    check_same_answers(tmp_path, "a" * 64)
    check_same_answers(tmp_path, "a" * 64)  # the same answers: a restart
    with pytest.raises(store.StoreError, match="another answers file"):
        check_same_answers(tmp_path, "b" * 64)


def test_score_needs_the_answers_file(tmp_path, capsys):
    from course_lib.hackathon.cli import main

    assert main([str(tmp_path)]) == 2
    assert "hackathon answers FILE" in capsys.readouterr().err
