"""The offline bundle, end to end on a tiny requirements file.

Wheels built here are served by a PEP 503 index on 127.0.0.1 (the only network the test suite's
offline guard allows); ``build_wheelhouse`` downloads them; the index is stopped; then a fresh
venv installs from the wheelhouse with ``--no-index`` while every Python process of that install
runs under the offline guard (a ``sitecustomize`` installs it), so any attempt to reach the
network is refused and fails the session.
"""

import base64
import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import venv
import zipfile
from pathlib import Path

import pytest

from course_lib.settings import REPO_ROOT
from course_lib.tooling import bundle


def make_wheel(folder: Path, name: str, version: str, requires=()) -> Path:
    """A minimal pure-Python wheel: one module that knows its version, METADATA, WHEEL, RECORD."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def make_index(root: Path, wheels: list[Path]) -> None:
    """``root/simple/<project>/index.html`` linking each wheel (PEP 503)."""
    by_project = {}
    for wheel in wheels:
        by_project.setdefault(wheel.name.split("-")[0].replace("_", "-"), []).append(wheel)
    for project, items in by_project.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="../../files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
            f"{w.name}</a>\n"
            for w in items
        )
        page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


class LocalIndex:
    """An HTTP server for ``root`` on 127.0.0.1, in a thread."""

    def __init__(self, root: Path):
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def pip_env(tmp_path: Path) -> dict:
    """pip sees no configured index, mirror or cache; anything but loopback goes to a dead proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


@pytest.fixture()
def indexes(tmp_path):
    """A main index (alpha needs beta; a CUDA-style torch) and a CPU index (torch+cpu)."""
    files = tmp_path / "main" / "files"
    wheels = [
        make_wheel(files, "alpha", "1.0", ["beta>=2"]),
        make_wheel(files, "beta", "2.1"),
        make_wheel(files, "beta", "3.0"),
        make_wheel(files, "torch", "2.0.0", ["nvidia-fake-cudnn==9.0"]),
        make_wheel(files, "nvidia_fake_cudnn", "9.0"),
    ]
    make_index(tmp_path / "main", wheels)
    cpu_files = tmp_path / "cpu" / "files"
    make_index(tmp_path / "cpu", [make_wheel(cpu_files, "torch", "2.0.0+cpu")])
    main, cpu = LocalIndex(tmp_path / "main"), LocalIndex(tmp_path / "cpu")
    yield main, cpu
    main.stop()
    cpu.stop()


@pytest.mark.subprocess
def test_bundle_downloads_then_installs_into_a_fresh_venv_with_no_network(tmp_path, indexes):
    main, cpu = indexes
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# tiny course\ntorch==2.0.0\nalpha==1.0  # needs beta\nbeta<3\n")
    house = tmp_path / "wheelhouse"
    env = pip_env(tmp_path)
    files = bundle.build_wheelhouse(
        requirements,
        house,
        torch_index=cpu.url,
        pip_args=["--index-url", main.url],
        env=env,
        build_tools=[],
    )
    names = sorted(p.name for p in files)
    assert names == [
        "alpha-1.0-py3-none-any.whl",
        "beta-2.1-py3-none-any.whl",
        "course-bundle.json",
        "requirements.txt",
        "torch-2.0.0+cpu-py3-none-any.whl",
    ]
    main.stop()
    cpu.stop()

    # A fresh venv; every Python process of the install runs under the offline guard.
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(
        "from course_lib.runtime.offline import install_guard\ninstall_guard()\n"
    )
    env.update(
        PYTHONPATH=os.pathsep.join([str(guard), str(REPO_ROOT)]),
        COURSE_OFFLINE_GUARD="1",
    )
    install = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    install += ["--no-index", "--find-links", str(house), "-r", str(house / "requirements.txt")]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    check = "import alpha, beta, importlib.metadata as m; print(beta.VERSION, m.version('torch'))"
    shown = subprocess.run(
        [str(python), "-c", check], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.stdout.split() == ["2.1", "2.0.0+cpu"], shown.stderr


@pytest.mark.subprocess
def test_a_linux_bundle_refuses_the_cuda_torch(tmp_path, indexes):
    main, _ = indexes
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch==2.0.0\n")
    with pytest.raises(RuntimeError, match=r"CUDA build \(it requires nvidia-fake-cudnn==9.0"):
        bundle.build_wheelhouse(
            requirements,
            tmp_path / "house",
            torch_index=main.url,
            pip_args=["--index-url", main.url],
            env=pip_env(tmp_path),
            build_tools=[],
        )


def test_requirement_lines_and_cuda_wheel_detection(tmp_path):
    reqs = tmp_path / "r.txt"
    reqs.write_text("# pins\ntorch==2.13.0  # cpu\n\nnumpy==2.4.6\n")
    assert bundle.requirement_lines(reqs) == ["torch==2.13.0", "numpy==2.4.6"]
    make_wheel(tmp_path, "nvidia_cublas", "12.0")
    make_wheel(tmp_path, "numpy", "2.4.6")
    assert bundle.cuda_wheels(tmp_path) == ["nvidia_cublas-12.0-py3-none-any.whl"]
    assert bundle.is_linux_target("manylinux2014_x86_64") and not bundle.is_linux_target(
        "win_amd64"
    )
