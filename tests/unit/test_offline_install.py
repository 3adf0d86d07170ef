"""The offline install with no holes, on a copy of the course with a tiny requirements file.

From a local wheelhouse (with its manifest), with every proxy pointing at a closed port, no pip
configuration, and the offline guard in every Python process: ``python -m course_lib setup
--wheelhouse DIR`` (the way in without make) and ``make setup WHEELHOUSE=DIR`` each install
into a fresh venv, the course included, and write the stamp; after either, ``make lab`` has
nothing left to install. ``doctor --bundle`` refuses a bundle made for another machine.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from test_bundle import make_wheel, pip_env

from course_lib.settings import REPO_ROOT
from course_lib.tooling import bundle

pytestmark = pytest.mark.subprocess
TINY_REQUIREMENTS = "# tiny course\nalpha==1.0\nbeta==2.1\n"


def course_copy(folder: Path) -> Path:
    """The course's Makefile, pyproject.toml and course_lib/, with the tiny requirements."""
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, folder / name)
    shutil.copytree(
        REPO_ROOT / "course_lib",
        folder / "course_lib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (folder / "requirements.txt").write_text(TINY_REQUIREMENTS)
    return folder


def wheel_of_installed(name: str, folder: Path) -> Path:
    """The installed distribution ``name`` packed back into a wheel (its RECORD lists its files):
    every bundle holds setuptools, and this test has no network to fetch one."""
    dist = metadata.distribution(name)
    wheel = folder / f"{name}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for item in dist.files:
            path = Path(dist.locate_file(item))
            if path.is_file() and path.suffix != ".pyc":
                zf.write(path, str(item))
    return wheel


@pytest.fixture()
def wheelhouse(tmp_path) -> Path:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    wheel_of_installed("setuptools", house)
    make_wheel(house, "alpha", "1.0", ["beta>=2"])
    make_wheel(house, "beta", "2.1")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(TINY_REQUIREMENTS)
    bundle.write_manifest(house, requirements, None, None)
    return house


def offline_env(tmp_path: Path, course: Path) -> dict:
    """No index, no pip config, dead proxies, and the offline guard in every Python process
    (importing the guard from the copy, so nothing of this repository is touched)."""
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(
        "from course_lib.runtime.offline import install_guard\ninstall_guard()\n"
    )
    env = pip_env(tmp_path)
    env.update(
        ALL_PROXY="http://127.0.0.1:9",
        PYTHONPATH=os.pathsep.join([str(guard), str(course)]),
        COURSE_OFFLINE_GUARD="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def run(command: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def installed_from_the_copy(course: Path, env: dict) -> None:
    python = course / ".venv" / "bin" / "python"
    check = "import alpha, beta, course_lib; print(beta.VERSION, course_lib.__file__)"
    shown = run([str(python), "-c", check], course, dict(env, PYTHONPATH=""))
    version, where = shown.split()
    assert version == "2.1" and Path(where).parent == course / "course_lib"
    assert (course / ".venv" / ".installed").is_file()


def nothing_left_to_install(course: Path, env: dict) -> None:
    """``make -n lab`` lists what ``make lab`` would run: no pip, no npm."""
    plan = run(["make", "-n", "lab"], course, env)
    assert "pip install" not in plan and "npm" not in plan, plan
    assert "course_lib lab" in plan


@pytest.mark.skipif(os.name == "nt", reason="the venv layout and make are Unix here")
def test_setup_verb_installs_from_the_wheelhouse_with_no_network(tmp_path, wheelhouse):
    course = course_copy(tmp_path / "course")
    env = offline_env(tmp_path, course)
    command = [sys.executable, "-m", "course_lib", "setup", "--wheelhouse", str(wheelhouse)]
    output = run(command, course, env)
    assert "--no-index --find-links" in output and "--no-build-isolation" in output
    installed_from_the_copy(course, env)
    nothing_left_to_install(course, env)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_setup_with_a_wheelhouse_then_a_second_run_installs_nothing(tmp_path, wheelhouse):
    course = course_copy(tmp_path / "course")
    env = offline_env(tmp_path, course)
    make = ["make", "setup", f"WHEELHOUSE={wheelhouse}", f"PYTHON={sys.executable}"]
    first = run(make, course, env)
    assert first.count("--no-index --find-links") == 2, first
    installed_from_the_copy(course, env)
    second = run(make, course, env)
    assert "pip install" not in second, second
    nothing_left_to_install(course, env)


def test_doctor_refuses_a_bundle_made_for_another_machine(tmp_path, wheelhouse):
    manifest = json.loads((wheelhouse / bundle.MANIFEST).read_text())
    manifest.update(python="3.12", os="Windows", cpu="x86_64")
    (wheelhouse / bundle.MANIFEST).write_text(json.dumps(manifest))
    problems = bundle.bundle_problems(wheelhouse, tmp_path / "requirements.txt")
    python, system, cpu = bundle.this_machine()
    assert problems == [
        f"this bundle is for CPython 3.12 on Windows x86_64; this machine is CPython {python} on "
        f"{system} {cpu}. Ask for the bundle made for this laptop, or install with internet "
        f"(docs/setup.md)."
    ]
    (tmp_path / "requirements.txt").write_text(TINY_REQUIREMENTS + "gamma==1.0\n")
    assert (
        "another requirements.txt"
        in bundle.bundle_problems(wheelhouse, tmp_path / "requirements.txt")[-1]
    )
    doctor = subprocess.run(
        [sys.executable, "-m", "course_lib", "doctor", "--bundle", str(wheelhouse)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctor.returncode == 1 and "this bundle is for CPython 3.12 on Windows" in doctor.stdout


def test_a_bundle_names_what_it_serves(tmp_path):
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0")
    requirements = tmp_path / "r.txt"
    requirements.write_text("alpha==1.0\n")
    written = bundle.write_manifest(house, requirements, "3.11", "macosx_11_0_arm64")
    assert (written["python"], written["os"], written["cpu"]) == ("3.11", "macOS", "arm64")
    assert written["requirements_sha256"] == bundle.requirements_sha256(requirements)
    assert bundle.describe_tag("win_amd64") == ("Windows", "x86_64")
    assert bundle.describe_tag("manylinux_2_28_aarch64") == ("Linux", "arm64")


def test_doctor_fails_clearly_on_an_intel_mac_and_names_the_room():
    from course_lib.tooling.checkup import check_platform

    intel = check_platform("Darwin", "x86_64")
    assert intel.status == "fail"
    assert "no wheels of the pinned torch==" in intel.detail and "room" in intel.fix
    assert check_platform("Darwin", "arm64").status == "pass"
    assert check_platform("Windows", "AMD64").status == "pass"


def test_doctor_says_which_python_the_course_supports():
    from course_lib.tooling.checkup import check_python

    assert check_python((3, 11, 7)).status == "pass"
    assert check_python((3, 12, 1)).status == "warn"
    assert "every pin has a wheel" in check_python((3, 12, 1)).detail
    assert check_python((3, 10, 13)).status == "fail"
