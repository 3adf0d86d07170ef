"""The submission server over HTTP: ``python -m course_lib hackathon serve`` started as a child
process on 127.0.0.1 (``SubmissionServer``), driven with httpx as a team's script would.

One server (made-up answers, 60 tweets, 12 teams) serves the tests in order: uploads and their
messages, every refusal (401, 403, 413, 422, 429), 10 teams uploading 5 files each at the same
time, a service scored at its registered address, and, last, the final reveal. A second data
folder is served, killed with SIGKILL in the middle of uploads, and served again.
"""

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from course_lib import data
from course_lib.hackathon import client as H
from course_lib.hackathon import services as V
from course_lib.hackathon import store

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

N = 60
IDS = [f"t{i:03d}" for i in range(N)]
TRUTH = [data.LABELS[i % 3] for i in range(N)]
TEXTS = [f"tweet {i} " + ["awful", "a flight", "lovely"][i % 3] for i in range(N)]
CROWD = [f"team{k:02d}" for k in range(10)]
LIMIT = 6


def csv_bytes(labels, header="id,label") -> bytes:
    return (header + "\n" + "".join(f"{i},{y}\n" for i, y in zip(IDS, labels))).encode()


def wrong_on(count: int) -> list[str]:
    return [data.LABELS[(i + (i < count)) % 3] for i in range(N)]


def write_inputs(folder, names, hosts=None):
    folder.mkdir(parents=True, exist_ok=True)
    answers = folder / "answers.csv"
    answers.write_text(
        "id,label,text\n" + "".join(f"{i},{y},{t}\n" for i, y, t in zip(IDS, TRUTH, TEXTS))
    )
    teams = folder / "teams.txt"
    lines = [f"{n},{(hosts or {}).get(n)}" if (hosts or {}).get(n) else n for n in names]
    teams.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return teams, answers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hackathon")
    names = CROWD + ["solo", "<b>Markup</b> & co"]
    teams, answers = write_inputs(folder, names, {"solo": "127.0.0.1"})
    srv = H.SubmissionServer(
        teams, answers, folder / "data", limit_per_hour=LIMIT, log_path=folder / "server.log"
    )
    with srv:
        yield srv
    assert not srv.leftovers(), "the submission server left processes behind"


def post(server, token, content, name="sub.csv", team=None):
    return httpx.post(
        f"{server.url}/api/submissions",
        headers={"Authorization": f"Bearer {token}"} if token else {},
        files={"file": (name, content, "text/csv")},
        data={"team": team} if team else None,
        timeout=30,
        trust_env=False,
    )


def test_upload_gets_its_messages_and_public_score_at_once(server, tmp_path):
    path = tmp_path / "solo.csv"
    path.write_bytes(csv_bytes(TRUTH)[:-30])  # the last line or two missing
    answer = H.submit_file(server.url, server.tokens["solo"], path)
    assert answer["status"] == 200 and answer["team"] == "solo" and answer["counted"]
    assert 0.9 < answer["public"] < 1.0
    assert any("have no line (counted as wrong)" in p for p in answer["problems"])
    history = H.fetch_history(server.url, server.tokens["solo"])
    assert [s["id"] for s in history["submissions"]] == [answer["id"]]
    board = H.fetch_board(server.url)
    assert board["rows"][0]["team"] == "solo" and board["rows"][0]["private"] is None
    assert "solo" in H.format_board(board)


def test_a_rejected_file_gets_the_checkers_message_and_is_kept(server):
    response = post(server, server.tokens["solo"], b"id;label\nt000;neutral\n")
    assert response.status_code == 422 and response.json()["rejected"]
    assert "separated by ';'" in response.json()["problems"][0]
    kept = H.fetch_history(server.url, server.tokens["solo"])["submissions"]
    assert kept[-1]["rejected"] and kept[-1]["id"] == response.json()["id"]


@pytest.mark.parametrize("token", [None, "not-a-token", "admin"])
def test_a_missing_or_wrong_token_is_401_with_a_bearer_challenge(server, token):
    token = server.admin_token if token == "admin" else token
    response = post(server, token, csv_bytes(TRUTH))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer" and response.json()["message"]


def test_one_teams_token_cannot_submit_for_another(server):
    response = post(server, server.tokens["team00"], csv_bytes(TRUTH), team="solo")
    assert response.status_code == 403 and response.json()["error"] == "wrong_team"
    response = post(server, server.tokens["team00"], csv_bytes(TRUTH), team="<script>x</script>")
    assert response.status_code == 403
    assert httpx.get(f"{server.url}/api/health", trust_env=False).json() == {"status": "ok"}


def test_an_upload_over_the_limit_is_413(server):
    response = post(server, server.tokens["solo"], b"id,label\n" + b"x" * (2 << 20))
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


def test_a_file_name_with_path_characters_or_markup_is_only_a_label(server):
    name = "../../etc/<img src=x onerror=alert(1)>.csv"
    response = post(server, server.tokens["<b>Markup</b> & co"], csv_bytes(TRUTH), name=name)
    assert response.status_code == 200 and response.json()["name"] == name.rsplit("/", 1)[-1]
    files = sorted(p.name for p in (server.data / store.FILES_DIR).iterdir())
    assert all(f[:6].isdigit() and f.endswith(".csv") for f in files)


def test_the_hourly_limit_answers_429_with_the_next_allowed_time(server):
    token = server.tokens["<b>Markup</b> & co"]  # one scored submission already
    for _ in range(LIMIT - 1):
        assert post(server, token, csv_bytes(wrong_on(5))).status_code == 200
    response = post(server, token, csv_bytes(TRUTH))
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 3000
    assert "next one is allowed at" in response.json()["message"] and response.json()["retry_at"]
    assert post(server, token, b"").status_code == 422  # a rejected file is still checked


def test_ten_teams_uploading_five_files_each_at_once_are_all_kept_intact(server):
    jobs = [(team, k, csv_bytes(wrong_on(3 * k + 1))) for team in CROWD for k in range(5)]
    start = threading.Barrier(len(jobs))

    def upload(job):
        team, k, content = job
        start.wait()
        return team, k, content, post(server, server.tokens[team], content, name=f"{k}.csv")

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(upload, jobs))
    assert [r[3].status_code for r in results] == [200] * 50
    numbers = [r[3].json()["id"] for r in results]
    assert len(set(numbers)) == 50
    for team, _, content, response in results:  # the bytes on disk are the bytes sent
        kept = (server.data / store.FILES_DIR / f"{response.json()['id']:06d}.csv").read_bytes()
        assert kept == content and response.json()["team"] == team
    log = (server.data / store.LOG_NAME).read_text().splitlines()
    records = [json.loads(line)["record"] for line in log if '"submission"' in line]
    assert {r["id"] for r in records} >= set(numbers)
    for team in CROWD:
        history = H.fetch_history(server.url, server.tokens[team])
        assert len(history["submissions"]) == 5 and history["scored_last_hour"] == 5
        assert (
            history["counted"]
            == min(  # the best public score counts
                history["submissions"], key=lambda s: (-s["public"], s["time"], s["id"])
            )["id"]
        )


def test_a_team_chooses_the_submission_that_counts(server):
    token = server.tokens["team00"]
    ids = [s["id"] for s in H.fetch_history(server.url, token)["submissions"]]
    response = httpx.post(
        f"{server.url}/api/choice",
        headers={"Authorization": f"Bearer {token}"},
        json={"submission": ids[-1]},
        trust_env=False,
    )
    assert response.status_code == 200 and response.json()["counted"] == ids[-1]
    other = httpx.post(
        f"{server.url}/api/choice",
        headers={"Authorization": f"Bearer {server.tokens['team01']}"},
        json={"submission": ids[-1]},
        trust_env=False,
    )
    assert other.status_code == 404


def test_a_service_is_scored_at_its_registered_address_only(server):
    answers = dict(zip(TEXTS, TRUTH))

    def respond(body):
        text = json.loads(body)["text"][0]
        return 200, json.dumps({"predictions": [{"label": answers[text]}]}).encode()

    with V.LocalService(respond, token="svc") as url:
        scored = H.register_service(server.url, server.tokens["solo"], url, "svc")
        refused = H.register_service(server.url, server.tokens["team01"], url, None)
    assert scored["status"] == 200 and scored["public"] == 1.0 and scored["kind"] == "service"
    assert scored["p95_ms"] is not None and scored["bonus"] > 0
    assert refused["status"] == 403 and "no service address is registered" in refused["message"]
    moved = H.register_service(server.url, server.tokens["solo"], "http://192.0.2.7:8000", None)
    assert moved["status"] == 403 and "not the address registered" in moved["message"]
    down = H.register_service(server.url, server.tokens["solo"], V.unused_local_url(), None)
    assert down["status"] == 422 and down["rejected"] and "down" in down["problems"][0]


def test_the_final_reveal_ranks_on_the_private_split_with_both_scores(server):
    assert H.fetch_board(server.url, final=True)["status"] == 401
    preview = H.fetch_board(server.url, server.admin_token, final=True)
    assert preview["final"] and preview["split"] == "private"
    assert not H.fetch_board(server.url)["final"]  # a preview reveals nothing
    assert H.reveal(server.url, server.tokens["solo"])["status"] == 401
    board = H.reveal(server.url, server.admin_token)
    assert board["final"] and board["size"] == N - round(0.4 * N)
    first = board["rows"][0]
    assert first["team"] == "solo" and first["private"] is not None and first["public"] is not None
    assert H.fetch_board(server.url)["final"]  # everyone sees it now
    assert post(server, server.tokens["team05"], csv_bytes(TRUTH)).status_code == 409


def test_sigkill_during_uploads_then_restart_keeps_every_acknowledged_submission(tmp_path):
    teams, answers = write_inputs(tmp_path, ["red", "blue"])
    data_dir = tmp_path / "data"
    srv = H.SubmissionServer(teams, answers, data_dir, limit_per_hour=100)
    sent = {hashlib.sha256(csv_bytes(wrong_on(k))).hexdigest(): k for k in range(12)}
    acknowledged = {}  # id -> sha256 of what the team sent
    with srv:
        half_sent, two_done = threading.Event(), threading.Event()

        def slow_body():  # a multipart upload that stops half-way: the server is mid-read
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
            yield csv_bytes(TRUTH)[:200]
            half_sent.set()
            time.sleep(30)

        def slow_upload():
            headers = {
                "Authorization": f"Bearer {srv.tokens['blue']}",
                "Content-Type": "multipart/form-data; boundary=b",
            }
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.post(
                    f"{srv.url}/api/submissions",
                    headers=headers,
                    content=slow_body(),
                    timeout=30,
                    trust_env=False,
                )

        def upload(k):  # quick uploads, some of them in flight when the server is killed
            with contextlib.suppress(httpx.HTTPError):
                response = post(srv, srv.tokens["red"], csv_bytes(wrong_on(k)))
                if response.status_code == 200:
                    acknowledged[response.json()["id"]] = response.json()
                    if len(acknowledged) >= 2:
                        two_done.set()

        threading.Thread(target=slow_upload, daemon=True).start()
        assert half_sent.wait(10)
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(upload, k) for k in range(12)]
            assert two_done.wait(20)
            os.kill(srv.process.pid, signal.SIGKILL)
            for f in futures:
                f.result()
        srv.process.wait(10)
    assert len(acknowledged) >= 2
    again = H.SubmissionServer(teams, answers, data_dir, limit_per_hour=100)
    with again:
        history = H.fetch_history(again.url, again.tokens["red"])["submissions"]
        assert set(acknowledged) <= {s["id"] for s in history}  # nothing acknowledged is lost
        for s in history:  # and what is there is whole: exactly the bytes of an upload
            content = (data_dir / store.FILES_DIR / f"{s['id']:06d}.csv").read_bytes()
            assert hashlib.sha256(content).hexdigest() in sent
        assert H.fetch_history(again.url, again.tokens["blue"])["submissions"] == []
        after = post(again, again.tokens["blue"], csv_bytes(TRUTH))
        assert after.status_code == 200 and after.json()["id"] == max(s["id"] for s in history) + 1
    assert not list((data_dir / store.FILES_DIR).glob("*" + store.TMP_SUFFIX))
    lines = (data_dir / store.LOG_NAME).read_text().splitlines()
    assert len(lines) == len(history) + 1 and all(json.loads(line) for line in lines)
