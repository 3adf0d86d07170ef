"""The room, for real on loopback: ``python -m course_lib room`` (JupyterHub, its proxy, one
system account per participant), driven through the hub's own log-in form and the Jupyter
server's API as three participants would, then stopped and started again.

Needs root (the room creates system accounts) and the proxy from ``npm ci`` (``make setup``).
Every account and home the module creates is removed at the end, and no process is left.
"""

import json
import os
import pwd
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from course_lib.room import accounts
from course_lib.room.access import ancestors
from course_lib.room.cli import PROXY
from course_lib.room.client import Participant
from course_lib.room.command import RoomCommand
from course_lib.room.names import NAME_RULE, account_name, is_valid_name
from course_lib.settings import NOTEBOOKS_DIR

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

CODE = "test-room-code"
TAG = f"{os.getpid() % 100000}"  # names unique to this run: tests may run beside other runs
A, B, C, D = (f"{n}-{TAG}" for n in ("ada", "bo", "cy", "dee"))
LESSON = "lessons/01_attention.ipynb"


def test_names_the_room_accepts():
    for good in ("ada", "team3-lin", "x", "a_b"):
        assert is_valid_name(good)
    for bad in ("", "../etc", "a/b", "<b>x</b>", "ada lovelace", "Ada", "3ada", "a.b", "a" * 21):
        assert not is_valid_name(bad), bad
    assert account_name("ada") == "room-ada"
    with pytest.raises(ValueError, match="1 to 20 characters"):
        account_name("../root")


def test_the_room_refuses_without_root_and_says_why(monkeypatch):
    from course_lib.room import cli

    monkeypatch.setattr(cli.accounts, "running_as_root", lambda: False)
    with pytest.raises(cli.RoomError, match="every participant could read everything"):
        cli.check_can_start(cli.parse(["--code", CODE]))
    assert cli.main(["--code", CODE]) == 2


def test_the_room_refuses_a_node_older_than_the_proxy_needs(monkeypatch):
    from course_lib.room import cli

    if not accounts.running_as_root() or not os.access(PROXY, os.X_OK):
        pytest.skip("the checks before it need root and the proxy")
    assert cli.node_major() >= cli.MIN_NODE  # this machine's node runs the room's tests
    monkeypatch.setattr(cli, "node_major", lambda: 18)
    with pytest.raises(
        cli.RoomError, match="needs Node.js 20 or newer; this machine has Node.js 18"
    ):
        cli.check_can_start(cli.parse(["--code", CODE]))


def test_directories_other_accounts_cannot_pass_are_named(tmp_path):
    from course_lib.room.access import blocked_message, blocking_directories

    closed = tmp_path / "closed"
    (closed / "inside").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(closed, 0o700)
    blocked = blocking_directories([closed / "inside"])
    assert closed in blocked and tmp_path not in blocked
    assert f"{closed} (mode 700)" in blocked_message(blocked)
    assert "--grant-traverse" in blocked_message(blocked)


def fake_shared_model(artifacts: Path) -> Path:
    """A folder that passes for a finished model (the files a model folder must hold)."""
    folder = artifacts / "minilm-tweets"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (folder / name).write_text("{}\n")
    os.chmod(folder / "model.safetensors", 0o600)  # as safetensors writes it: private
    os.chmod(artifacts, 0o755)
    return folder


def directory_modes() -> dict:
    """The modes of the directories on the way to this Python (the room may open some)."""
    return {p: p.stat().st_mode for p in ancestors(Path(os.path.realpath(sys.executable)))}


def processes_of(names) -> list[int]:
    uids = {
        accounts.lookup(account_name(n)).pw_uid for n in names if accounts.lookup(account_name(n))
    }
    return [
        p.pid
        for p in psutil.process_iter(["uids"])
        if p.info["uids"] and p.info["uids"].real in uids
    ]


@pytest.fixture(scope="module")
def room():
    if not accounts.running_as_root():
        pytest.skip("the room creates system accounts: run the tests as root")
    assert os.access(PROXY, os.X_OK), f"{PROXY} missing: run `make setup` (npm ci)"
    top = Path(tempfile.mkdtemp(prefix="course-room-test-"))
    os.chmod(top, 0o755)  # participants pass through it to their homes
    shared = fake_shared_model(top / "artifacts")
    env = dict(os.environ, COURSE_ARTIFACTS=str(top / "artifacts"))
    run = RoomCommand(top / "data", CODE, 3, ["--grant-traverse", "--threads", "1"], env)
    run.shared, run.modes_before = shared, directory_modes()
    run.start()
    yield run
    try:
        if run.process and run.process.running():
            run.stop()
    finally:
        for name in (A, B, C, D):
            accounts.remove_account(account_name(name))
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def people(room):
    found = {name: Participant(room.url, name) for name in (A, B, C, D)}
    yield found
    for person in found.values():
        person.close()


def test_a_wrong_workshop_code_is_refused(room, people):
    answer = people[A].login("not-the-code")
    assert answer.status_code == 403
    assert "Invalid username or password" in answer.text


def test_a_name_with_path_characters_or_markup_is_refused_with_the_rule(room, people):
    for bad in ("../etc", "<b>x</b>"):
        answer = people[A].login(CODE, name=bad)
        assert answer.status_code == 403
        assert "That name cannot be used" in answer.text
        assert NAME_RULE.split(":")[0] in answer.text


def first_code_cells(notebook: dict, count: int) -> list[str]:
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"][:count]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]


def test_three_participants_run_lesson_01_at_once_in_their_own_servers(room, people):
    committed = json.loads((NOTEBOOKS_DIR / "01_attention.ipynb").read_text())
    expected = "".join(
        [c for c in committed["cells"] if c["cell_type"] == "code"][2]["outputs"][0]["text"]
    )
    results, errors = {}, []

    def participant(name):
        try:
            person = people[name]
            assert person.login(CODE).status_code == 302
            t0 = time.perf_counter()
            person.start_server()
            ready = time.perf_counter() - t0
            copy = person.api("GET", f"contents/{LESSON}").json()["content"]
            kernel = person.kernel = person.start_kernel()  # later tests reuse it
            who = "import os, sys, pwd; print(pwd.getpwuid(os.getuid()).pw_name, sys.prefix)"
            runs = person.execute(kernel, [who, *first_code_cells(copy, 3)])
            results[name] = (ready, runs, time.perf_counter() - t0)
        except Exception as exc:  # reported below with the name
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=participant, args=(n,)) for n in (A, B, C)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    together = time.perf_counter() - t0
    assert not errors, errors
    for name, (ready, runs, _) in results.items():
        assert [r.status for r in runs] == ["ok"] * 4, [(r.status, r.error) for r in runs]
        account, prefix = runs[0].stdout.split()
        assert account == account_name(name)  # the server and kernel run as the participant
        assert Path(prefix) == Path(sys.prefix)  # the course's environment is the kernel
        assert "course_lib ready" in runs[1].stdout
        assert runs[3].stdout == expected
        cells = sum(r.seconds for r in runs[1:])
        print(f"{name}: server ready {ready:.1f} s, lesson 01's first cells {cells:.1f} s")
    print(f"three participants, log-in to lesson 01 done: {together:.1f} s")


def test_a_fourth_participant_is_told_the_room_is_full(room, people):
    answer = people[D].login(CODE)
    assert answer.status_code == 403
    assert "The room is full: all 3 places are taken" in answer.text


def test_the_api_refuses_another_participants_notebook(room, people):
    assert people[A].api("GET", f"contents/{LESSON}").status_code == 200
    assert people[A].api("GET", f"contents/{LESSON}", owner=B).status_code == 403


def test_a_kernel_cannot_read_another_participants_home(room, people):
    other = Path(pwd.getpwnam(account_name(B)).pw_dir)
    assert oct(other.stat().st_mode & 0o777) == "0o700"
    paths = (str(other), str(other / LESSON))
    code = (
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        open(path).read() if path.endswith('.ipynb') else __import__('os').listdir(path)\n"
        "        print('READ', path)\n"
        "    except PermissionError:\n"
        "        print('denied')\n"
    )
    person = people[A]
    run = person.execute(person.kernel, [code])[0]
    assert run.stdout.split() == ["denied", "denied"], run.stdout + run.error


def test_the_shared_model_is_linked_read_only(room, people):
    code = (  # model_folder + is_complete_model_folder: how finetuned_model() finds it
        "from pathlib import Path\n"
        "from course_lib.artifacts import is_complete_model_folder, model_folder\n"
        "folder = model_folder()\n"
        "print(is_complete_model_folder(folder) and folder.parent == Path.home() / 'artifacts')\n"
        "print(open(folder / 'model.safetensors').read() == '{}\\n')\n"
        "try:\n"
        "    open(folder / 'config.json', 'a').write('x')\n"
        "    print('WROTE')\n"
        "except PermissionError:\n"
        "    print('read-only')\n"
    )
    person = people[A]
    run = person.execute(person.kernel, [code])[0]
    assert run.stdout.split() == ["True", "True", "read-only"], run.stdout + run.error
    assert (room.shared / "config.json").read_text() == "{}\n"
    assert (room.shared / "model.safetensors").stat().st_mode & 0o777 == 0o600  # left as it was


def test_generated_files_go_to_the_participants_own_build_folder(room, people):
    code = (  # lesson 10 writes BUILD_DIR / "hackathon"; the course's build/ is not theirs
        "from pathlib import Path\n"
        "from course_lib.settings import BUILD_DIR\n"
        "print(BUILD_DIR == Path.home() / 'build')\n"
        "(BUILD_DIR / 'hackathon').mkdir(parents=True, exist_ok=True)\n"
        "print('written')\n"
    )
    person = people[A]
    run = person.execute(person.kernel, [code])[0]
    assert run.stdout.split() == ["True", "written"], run.stdout + run.error


def test_the_instructor_reaches_the_admin_page(room):
    instructor = Participant(room.url, "instructor")
    try:
        assert instructor.login(room.admin_password()).status_code == 302
        page = instructor.http.get("/hub/admin", follow_redirects=True)
        assert page.status_code == 200 and "admin" in page.text.lower()
    finally:
        instructor.close()
    impostor = Participant(room.url, "instructor")
    try:
        assert impostor.login(CODE).status_code == 403  # the workshop code is not enough
    finally:
        impostor.close()


def test_a_stopped_room_leaves_nothing_and_keeps_edits_on_restart(room, people):
    person = people[A]
    notebook = person.api("GET", f"contents/{LESSON}").json()["content"]
    marker = f"# my own note {TAG}"
    notebook["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": marker})
    body = {"type": "notebook", "format": "json", "content": notebook}
    assert person.api("PUT", f"contents/{LESSON}", json=body).status_code == 200

    assert room.stop() == []
    assert processes_of((A, B, C)) == []  # no server, kernel or terminal of a participant
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(room.data) in " ".join(p.info["cmdline"] or [])
    ]
    assert directory_modes() == room.modes_before  # --grant-traverse put every mode back

    room.start()
    again = Participant(room.url, A)
    try:
        assert again.login(CODE).status_code == 302
        again.start_server()
        kept = again.api("GET", f"contents/{LESSON}").json()["content"]
        assert kept["cells"][0]["source"] == marker
    finally:
        again.close()
    assert room.stop() == []
    assert processes_of((A, B, C)) == []
